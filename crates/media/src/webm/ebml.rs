//! EBML encoding and decoding: the few primitives a WebM writer and its recovery need.

/// Element ids used by the writer and the reader (Matroska specification names).
pub(crate) mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const VOID: u32 = 0xEC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const DATE_UTC: u32 = 0x4461;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TITLE: u32 = 0x7BA9;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const NAME: u32 = 0x536E;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

/// The 8-byte "unknown size" marker.
pub(crate) const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Append an element id (ids keep their length marker, so they are written as-is).
pub(crate) fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Append a data size in the shortest vint that holds it (never the all-ones pattern).
pub(crate) fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    put_size_len(out, size, len);
}

/// Append a data size as a vint of exactly `len` bytes (1..=8).
pub(crate) fn put_size_len(out: &mut Vec<u8>, size: u64, len: usize) {
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// Append an unsigned integer element in the fewest bytes.
pub(crate) fn put_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    put_id(out, id);
    put_size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

/// Append an unsigned integer element of exactly 8 bytes (patchable in place).
pub(crate) fn put_uint8(out: &mut Vec<u8>, id: u32, v: u64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a signed integer element (8 bytes).
pub(crate) fn put_int8(out: &mut Vec<u8>, id: u32, v: i64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append an 8-byte float element.
pub(crate) fn put_float(out: &mut Vec<u8>, id: u32, v: f64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a string or binary element.
pub(crate) fn put_bytes(out: &mut Vec<u8>, id: u32, v: &[u8]) {
    put_id(out, id);
    put_size(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// Append a master element whose children are already encoded in `body`.
pub(crate) fn put_master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_bytes(out, id, body);
}

/// Append a Void element of exactly `total` bytes (`total` ≥ 2).
pub(crate) fn put_void(out: &mut Vec<u8>, total: usize) {
    debug_assert!(total >= 2);
    put_id(out, id::VOID);
    // 1-byte size up to 126 bytes of payload; 8-byte size beyond.
    if total - 2 < 127 {
        put_size_len(out, (total - 2) as u64, 1);
        out.resize(out.len() + total - 2, 0);
    } else {
        put_size_len(out, (total - 9) as u64, 8);
        out.resize(out.len() + total - 9, 0);
    }
}

/// An element header read from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The id, with its length marker.
    pub id: u32,
    /// The data size; `None` for "unknown".
    pub size: Option<u64>,
    /// Bytes the id and size took.
    pub len: usize,
}

/// Read a vint (size-style: marker removed). Returns (value, length, all-ones).
fn read_vint(buf: &[u8]) -> Option<(u64, usize, bool)> {
    let first = *buf.first()?;
    if first == 0 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    if buf.len() < len {
        return None;
    }
    let mut v = u64::from(first) & ((1u64 << (8 - len)) - 1);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    let all_ones = v == (1u64 << (7 * len)) - 1;
    Some((v, len, all_ones))
}

/// Read an element header at the start of `buf` (`None` when `buf` is too short or invalid).
pub(crate) fn read_header(buf: &[u8]) -> Option<Header> {
    let first = *buf.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 || buf.len() < id_len {
        return None;
    }
    let id = buf[..id_len]
        .iter()
        .fold(0u32, |a, b| (a << 8) | u32::from(*b));
    let (size, size_len, unknown) = read_vint(&buf[id_len..])?;
    Some(Header {
        id,
        size: (!unknown).then_some(size),
        len: id_len + size_len,
    })
}

/// Read a big-endian unsigned integer payload (up to 8 bytes).
pub(crate) fn read_uint(payload: &[u8]) -> u64 {
    payload
        .iter()
        .take(8)
        .fold(0u64, |a, b| (a << 8) | u64::from(*b))
}

/// Read a track number vint at the start of a block (marker removed).
pub(crate) fn read_track_number(buf: &[u8]) -> Option<(u64, usize)> {
    read_vint(buf).map(|(v, len, _)| (v, len))
}

/// Iterate the children of a master element's payload: (header, payload).
pub(crate) fn children(mut body: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    std::iter::from_fn(move || {
        let h = read_header(body)?;
        let size = usize::try_from(h.size?).ok()?;
        let end = h.len.checked_add(size)?;
        if end > body.len() {
            return None;
        }
        let payload = &body[h.len..end];
        body = &body[end..];
        Some((h, payload))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        for v in [
            0u64,
            1,
            126,
            127,
            128,
            16_382,
            16_383,
            1 << 20,
            (1 << 56) - 2,
        ] {
            let mut out = Vec::new();
            put_id(&mut out, id::SIMPLE_BLOCK);
            put_size(&mut out, v);
            let h = read_header(&out).unwrap();
            assert_eq!(
                (h.id, h.size, h.len),
                (id::SIMPLE_BLOCK, Some(v), out.len())
            );
        }
        // 127 in one byte would be the reserved all-ones pattern.
        let mut out = Vec::new();
        put_size(&mut out, 127);
        assert_eq!(out, [0x40, 0x7F]);
    }

    #[test]
    fn unknown_size_is_read_as_unknown() {
        let mut out = Vec::new();
        put_id(&mut out, id::SEGMENT);
        out.extend_from_slice(&UNKNOWN_SIZE);
        let h = read_header(&out).unwrap();
        assert_eq!((h.id, h.size, h.len), (id::SEGMENT, None, 12));
    }

    #[test]
    fn void_has_the_exact_length() {
        for total in [2usize, 3, 50, 128, 129, 300] {
            let mut out = Vec::new();
            put_void(&mut out, total);
            assert_eq!(out.len(), total);
            let h = read_header(&out).unwrap();
            assert_eq!(h.len + h.size.unwrap() as usize, total);
        }
    }

    #[test]
    fn uints_are_minimal_and_readable() {
        let mut out = Vec::new();
        put_uint(&mut out, id::TRACK_NUMBER, 0);
        put_uint(&mut out, id::TIMECODE, 70_000);
        let kids: Vec<_> = children(&out).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(read_uint(kids[0].1), 0);
        assert_eq!(kids[1].1.len(), 3);
        assert_eq!(read_uint(kids[1].1), 70_000);
    }

    #[test]
    fn truncated_input_is_none_not_a_panic() {
        assert!(read_header(&[]).is_none());
        assert!(read_header(&[0x1A, 0x45]).is_none());
        assert!(read_header(&[0x00, 0x81]).is_none());
        assert!(read_header(&[0xA3, 0x40]).is_none());
        let mut out = Vec::new();
        put_bytes(&mut out, id::NAME, b"hello");
        assert_eq!(children(&out[..out.len() - 1]).count(), 0);
    }
}
