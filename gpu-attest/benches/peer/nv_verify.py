"""nv-local-gpu-verifier 2.7.3 (NVIDIA, PyPI) on the h100-550.90.07 vector, through the API
its attestation SDK uses: collect_gpu_evidence in test_no_gpu mode (the bundled sample report
and chain, byte-identical to our vector) and attest() with the report's real nonce.

Two workarounds, both for bugs of 2.7.3, not for verification steps:
- `cc_admin --test_no_gpu` checks the sample against a hard-coded nonce (4cff7f53…) that the
  sample does not carry, so the CLI cannot verify its own sample; attest() takes the nonce;
- `--driver_rim` / `--vbios_rim` are never copied into the settings attest() reads the paths
  from, so they are set here.
Usage: nv_verify.py NONCE_HEX DRIVER_RIM VBIOS_RIM OCSP_URL; exit 0 when attestation passes."""
import sys
import warnings

warnings.filterwarnings("ignore")
from verifier import cc_admin  # noqa: E402

nonce, driver_rim, vbios_rim, ocsp_url = sys.argv[1:5]
args = {
    "verbose": False, "test_no_gpu": True, "user_mode": True, "allow_hold_cert": False,
    "driver_rim": driver_rim, "vbios_rim": vbios_rim, "service_key": None, "nonce": nonce,
    "rim_root_cert": None, "rim_service_url": None, "ocsp_url": ocsp_url,
    "ocsp_nonce_disabled": True, "claims_version": "2.0",
}
for settings in {s for s in cc_admin.GPU_ARCHITECTURE_MAP.values() if s is not None}:
    settings.set_driver_rim_path(driver_rim)
    settings.set_vbios_rim_path(vbios_rim)
evidence = cc_admin.collect_gpu_evidence(nonce, True)
result, _claims = cc_admin.attest(args, nonce, evidence)
sys.exit(0 if result else 1)
