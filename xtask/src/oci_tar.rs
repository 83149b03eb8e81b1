//! The one layer of the filter's OCI image: a gzipped tar holding `plugin.wasm`, made the same way
//! every time (same `.wasm` → same bytes → same digest). A tar archive and a gzip stream both carry
//! timestamps, owners and the builder's OS; here the one entry has mtime 0, uid/gid 0, no user or
//! group names and mode 0644, and the gzip header has mtime 0, no file name and OS "unknown", at a
//! fixed compression level. Written by hand (one ustar header) rather than with a tar crate: one
//! regular file is all the image needs, and every header byte is then chosen here.

use std::io::Write as _;

use anyhow::{Result, bail};
use flate2::{Compression, GzBuilder};

/// A tar block.
const BLOCK: usize = 512;

/// A POSIX ustar archive with one regular file `name` holding `content`, ended by the two zero
/// blocks the format requires.
pub fn single_file_tar(name: &str, content: &[u8]) -> Result<Vec<u8>> {
    if name.is_empty() || name.len() > 100 {
        bail!("a tar entry name must be 1 to 100 bytes: {name:?}");
    }
    let mut header = [0u8; BLOCK];
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, &octal(0o644, 8)?);
    put(&mut header, 108, &octal(0, 8)?); // uid
    put(&mut header, 116, &octal(0, 8)?); // gid
    put(&mut header, 124, &octal(content.len() as u64, 12)?);
    put(&mut header, 136, &octal(0, 12)?); // mtime: the epoch, always
    header[156] = b'0'; // a regular file
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    // The checksum is taken with its own field read as eight spaces.
    put(&mut header, 148, b"        ");
    let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
    put(&mut header, 148, &octal(sum, 7)?);
    header[155] = b' ';

    let padding = (BLOCK - content.len() % BLOCK) % BLOCK;
    let mut tar = Vec::with_capacity(BLOCK + content.len() + padding + 2 * BLOCK);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    tar.resize(tar.len() + padding + 2 * BLOCK, 0);
    Ok(tar)
}

/// `bytes` gzipped with a header that names no file, no time (mtime 0) and no OS (255).
pub fn fixed_gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// `value` in octal, zero-padded to `width - 1` digits and NUL-terminated (a ustar number field).
fn octal(value: u64, width: usize) -> Result<Vec<u8>> {
    let digits = format!("{value:0>w$o}", w = width - 1);
    if digits.len() != width - 1 {
        bail!("{value} does not fit a {width}-byte tar field");
    }
    let mut field = digits.into_bytes();
    field.push(0);
    Ok(field)
}

fn put(header: &mut [u8; BLOCK], at: usize, bytes: &[u8]) {
    header[at..at + bytes.len()].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_checksum_is_the_sum_of_its_bytes_with_the_field_as_spaces() {
        let tar = single_file_tar("plugin.wasm", b"\0asm").unwrap();
        assert_eq!(
            tar.len(),
            4 * BLOCK,
            "header, one content block, two end blocks"
        );
        let field = std::str::from_utf8(&tar[148..154]).unwrap();
        let stored = u64::from_str_radix(field, 8).unwrap();
        let mut header = tar[..BLOCK].to_vec();
        header[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, header.iter().map(|b| u64::from(*b)).sum::<u64>());
    }

    #[test]
    fn names_longer_than_the_field_are_refused() {
        assert!(single_file_tar(&"a".repeat(101), b"").is_err());
    }

    #[test]
    fn the_same_input_gives_the_same_gzip_bytes() {
        let a = fixed_gzip(b"plugin").unwrap();
        assert_eq!(a, fixed_gzip(b"plugin").unwrap());
        assert_eq!(
            &a[4..10],
            &[0, 0, 0, 0, 2, 255],
            "mtime 0, best, OS unknown"
        );
    }
}
