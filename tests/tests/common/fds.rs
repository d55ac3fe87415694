//! Children of a test process must not inherit its TPM connections.
//!
//! The TSS TCTI libraries open their swtpm sockets without close-on-exec. A child spawned
//! (swtpm, tpm2-tools) while a kernel's attester is open inherits a copy of that kernel's
//! TPM connection, and the copy outlives the attester: swtpm serves one connection at a
//! time, so it keeps serving the dead one and the next client of that swtpm waits forever.
//! That is what left a kernel in `booting` when two test clusters started side by side
//! (`tests/tests/e2e/two_clusters.rs`): `ss -tnp` showed one cluster's swtpm holding a
//! connection to another cluster's swtpm. Shared by the e2e tests and the attestation
//! crate's swtpm tests (included there by path).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd`'s child start with only the descriptors `cmd` sets up (stdio).
pub fn no_inherited_descriptors(cmd: &mut Command) -> &mut Command {
    #[allow(
        unsafe_code,
        reason = "a pre-exec hook is the only way to act between fork and exec"
    )]
    // SAFETY: the hook runs in the forked child before exec and only makes raw syscalls
    // (close_range, fcntl), which are async-signal-safe; it allocates nothing and takes no
    // lock. Marking descriptors close-on-exec, rather than closing them, keeps the standard
    // library's exec-error pipe working, so a missing program is still a spawn error.
    unsafe {
        cmd.pre_exec(|| {
            let all = libc::c_uint::MAX;
            #[allow(
                clippy::cast_possible_wrap,
                reason = "CLOSE_RANGE_CLOEXEC is 4; close_range(3) takes it as an int"
            )]
            let cloexec = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
            if libc::close_range(3, all, cloexec) == 0 {
                return Ok(());
            }
            // Kernels before 5.11: one descriptor at a time over the usual range.
            for fd in 3..4096 {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
            Ok(())
        })
    }
}
