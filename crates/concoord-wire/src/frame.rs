//! Framing shared by the client protocol and the replica-to-replica transport: a
//! little-endian `u32` body length, then the body.
//!
//! Pure byte arithmetic: no sockets, no codec. A receiver checks the announced
//! length against its limit *before* reading the body, so a hostile peer cannot make
//! it allocate more than the limit.

use std::fmt;

/// Bytes in the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Why a frame was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// The announced body length exceeds the receiver's limit.
    TooLarge { len: usize, max: usize },
    /// A frame with an empty body, which no message encodes to.
    Empty,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes is larger than the limit of {max} bytes")
            }
            FrameError::Empty => write!(f, "empty frame"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The body length announced by a frame header, checked against `max`.
pub fn body_len(header: [u8; FRAME_HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Appends a frame holding `body` to `out`: one buffer, so it goes out in one write.
/// Returns an error (and appends nothing) if the body exceeds `max` bytes.
pub fn put_frame(out: &mut Vec<u8>, body: &[u8], max: usize) -> Result<(), FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    if body.len() > max || body.len() > u32::MAX as usize {
        return Err(FrameError::TooLarge { len: body.len(), max });
    }
    out.reserve(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Splits complete frames off the front of `buf`, for readers that fill a buffer
/// from a socket. Returns the body range of the first complete frame, or `None` if
/// more bytes are needed.
pub fn next_frame(buf: &[u8], max: usize) -> Result<Option<std::ops::Range<usize>>, FrameError> {
    let Some(header) = buf.get(..FRAME_HEADER_LEN) else { return Ok(None) };
    let mut h = [0u8; FRAME_HEADER_LEN];
    h.copy_from_slice(header);
    let len = body_len(h, max)?;
    let end = FRAME_HEADER_LEN + len;
    Ok((buf.len() >= end).then_some(FRAME_HEADER_LEN..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        put_frame(&mut out, b"hello", 100).unwrap();
        put_frame(&mut out, b"x", 100).unwrap();
        assert_eq!(&out[..4], &5u32.to_le_bytes());
        let r = next_frame(&out, 100).unwrap().unwrap();
        assert_eq!(&out[r.clone()], b"hello");
        let rest = &out[r.end..];
        let r2 = next_frame(rest, 100).unwrap().unwrap();
        assert_eq!(&rest[r2], b"x");
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut out = Vec::new();
        put_frame(&mut out, b"hello", 100).unwrap();
        for cut in 0..out.len() {
            assert_eq!(next_frame(&out[..cut], 100), Ok(None));
        }
    }

    #[test]
    fn oversized_and_empty_frames_are_refused() {
        assert_eq!(
            body_len(1000u32.to_le_bytes(), 999),
            Err(FrameError::TooLarge { len: 1000, max: 999 })
        );
        assert_eq!(body_len(0u32.to_le_bytes(), 999), Err(FrameError::Empty));
        assert_eq!(
            body_len(u32::MAX.to_le_bytes(), 1 << 20).unwrap_err().to_string(),
            "frame of 4294967295 bytes is larger than the limit of 1048576 bytes"
        );
        let mut out = Vec::new();
        assert!(put_frame(&mut out, &[0; 10], 9).is_err());
        assert!(out.is_empty());
    }
}
