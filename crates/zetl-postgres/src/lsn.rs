//! PostgreSQL WAL positions (`pg_lsn`), written `X/Y` in hex as the server does.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        (hi <= u32::MAX as u64 && lo <= u32::MAX as u64).then_some(Lsn((hi << 32) | lo))
    }
}

impl zetl_core::source::SourcePosition for Lsn {
    const KIND: &'static str = "a PostgreSQL LSN";

    fn parse(text: &str) -> Result<Self, String> {
        Lsn::parse(text).ok_or_else(|| "expected two hexadecimal numbers, as in 16/B374D848".into())
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["0/0", "0/16B3748", "1A/FFFFFFFF"] {
            assert_eq!(Lsn::parse(s).map(|l| l.to_string()).as_deref(), Some(s));
        }
        assert_eq!(Lsn::parse("16/B374D848").map(|l| l.0), Some(0x16_B374_D848));
        assert!(Lsn::parse("nope").is_none());
        assert!(Lsn::parse("1/100000000").is_none());
    }
}
