//! Input helpers shared by the verbs: reads of what a user points the CLI
//! at (standard input, a file), bounded by what a region can take, so that
//! an endless input (`/dev/zero`, a pipe that never closes) is refused
//! instead of filling memory.

use std::io::Read;

/// Read `input` to its end, but stop after `limit + 1` bytes: the caller
/// then knows the input does not fit, having held no more than that.
pub fn read_at_most(input: impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::read_at_most;

    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        let input = vec![7u8; 1 << 20];
        assert_eq!(read_at_most(&input[..], 4096).unwrap().len(), 4097);
        assert_eq!(read_at_most(&input[..10], 4096).unwrap().len(), 10);
        assert_eq!(read_at_most(&[][..], 32).unwrap().len(), 0);
    }
}
