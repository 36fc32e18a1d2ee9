//! Writing to the TUN device: a batch of inner packets coalesced (gro.rs) and written
//! one frame per write(2), as node/datapath.py's `flush_tun` does, with the same
//! outcomes counted: a frame the device would not take now (EAGAIN) is dropped as
//! `tun_write_full`, one it refuses (any other error) as `tun_write_failed`.
//! Runs without the GIL; the descriptor belongs to Python, which keeps it open for as
//! long as it calls in.

/// What became of a batch's frames: (written, full, failed).
pub fn write_frames<F: AsRef<[u8]>>(fd: i32, frames: &[F]) -> (usize, usize, usize) {
    let (mut written, mut full, mut failed) = (0, 0, 0);
    for frame in frames.iter().map(AsRef::as_ref) {
        // SAFETY: `frame` is a live, initialised buffer of `frame.len()` bytes that
        // write(2) only reads; `fd` is an open descriptor Python lends for the call (a
        // closed or wrong one makes write fail with EBADF, counted, never undefined).
        let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
        if n >= 0 {
            written += 1;
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
            full += 1;
        } else {
            failed += 1;
        }
    }
    (written, full, failed)
}
