"""Whole-process comparison of our `verify_gpu` example with nv-local-gpu-verifier on the
h100-550.90.07 vector, fully offline. Run it inside a network namespace with only loopback
(`unshare -n`, see run.sh): the captured OCSP responses are served on 127.0.0.1 and the peer's
clock is faked with libfaketime to 2025-08-21 12:00 UTC (the captured OCSP responses and the
RIM signing certificates are valid then); ours gets the same instant with --now.

Checks the same verdict on three inputs (valid; wrong nonce; a driver RIM with one golden hash
edited), then times RUNS whole-process runs of each and prints one JSON line with
`nv_local_gpu_verifier_speedup` = median(peer) / median(ours).
Usage: compare.py OURS_BINARY PEER_PYTHON [RUNS]"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "..", "..", "tests", "vectors")
H100 = os.path.join(VEC, "h100-550.90.07")
REPORT_HEX = os.path.join(VEC, "hopper-local", "hopperAttestationReport.txt")
NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
DRIVER = os.path.join(H100, "NV_GPU_DRIVER_GH100_550.90.07.xml")
VBIOS = os.path.join(H100, "NV_GPU_VBIOS_1010_0200_882_96009F0001.xml")
NOW = "1755777600"
FAKE = "2025-08-21 12:00:00"
OCSP = "http://127.0.0.1:18080/"
ours_bin, peer_python = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 15
env = dict(os.environ, TZ="UTC")
ours_bin = os.path.abspath(ours_bin)
# nv-local-gpu-verifier writes verifier.log into its working directory: keep it out of the tree.
os.chdir(tempfile.mkdtemp(prefix="gpu-peer-"))


def timed(cmd):
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env, check=False)
    return done.returncode == 0, time.perf_counter() - start


def ours(nonce, driver):
    return timed([ours_bin, "--report", REPORT_HEX, "--chain", os.path.join(H100, "cert_chain.pem"),
                  "--nonce", nonce, "--rim", driver, "--rim", VBIOS, "--now", NOW, "--json"])


def peer(nonce, driver):
    return timed(["faketime", FAKE, peer_python, os.path.join(HERE, "nv_verify.py"),
                  nonce, driver, VBIOS, OCSP])


subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
stub = subprocess.Popen([peer_python, os.path.join(HERE, "ocsp_stub.py"), "18080",
                         os.path.join(H100, "ocsp")], stderr=subprocess.DEVNULL)
time.sleep(1.5)
with tempfile.TemporaryDirectory() as tmp:
    tampered = os.path.join(tmp, "driver_tampered.xml")
    with open(DRIVER, encoding="utf-8") as f:
        text = f.read()
    golden = "80161aac5e7509f038a6457b111e048207d1dc0e78edbb8c172fca4139c1d5f29cda67ecdd261fdc9203b76387f7389f"
    with open(tampered, "w", encoding="utf-8") as f:
        f.write(text.replace(golden, "9" + golden[1:], 1))
    verdicts = {}
    for name, nonce, driver in [("valid", NONCE, DRIVER), ("wrong_nonce", "00" * 32, DRIVER),
                                ("tampered_driver_rim", NONCE, tampered)]:
        verdicts[name] = {"ours": ours(nonce, driver)[0], "nv_local_gpu_verifier": peer(nonce, driver)[0]}
ours_s = [ours(NONCE, DRIVER)[1] for _ in range(runs)]
peer_s = [peer(NONCE, DRIVER)[1] for _ in range(runs)]
stub.kill()
same = all(v["ours"] == v["nv_local_gpu_verifier"] for v in verdicts.values())
print(json.dumps({
    "verdicts": verdicts, "same_verdicts": same, "runs": runs,
    "ours_median_s": round(statistics.median(ours_s), 4),
    "nv_local_gpu_verifier_median_s": round(statistics.median(peer_s), 4),
    "nv_local_gpu_verifier_speedup": round(statistics.median(peer_s) / statistics.median(ours_s), 1),
}))
sys.exit(0 if same else 1)
