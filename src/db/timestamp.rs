//! `timestamptz` columns read without chrono's date arithmetic.
//!
//! `DateTime<Utc>`'s own `FromSql` adds the wire value (microseconds since
//! 2000-01-01) to a `NaiveDateTime` built for that date each time, ≈ 270
//! instructions a value, 51 per messages page (callgrind, README "Benchmarks");
//! shifting it to the Unix epoch and taking chrono's timestamp constructor gives
//! the same instant for a fraction of that. Same accepted type, same value,
//! same refusal of what chrono cannot hold (PostgreSQL's `infinity`).

use chrono::{DateTime, Utc};
use tokio_postgres::types::{FromSql, Type};

/// A `timestamptz` column's value (`row.get::<_, Timestamptz>(i).0`).
pub struct Timestamptz(pub DateTime<Utc>);

/// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix microseconds.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl<'a> FromSql<'a> for Timestamptz {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let micros = <[u8; 8]>::try_from(raw)
            .map(i64::from_be_bytes)
            .map_err(|_| "invalid message length: timestamptz")?;
        micros
            .checked_add(PG_EPOCH_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .map(Timestamptz)
            .ok_or_else(|| "value too large to decode".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_chronos_own_from_sql_reads() {
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        let mut values = vec![
            0i64,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            PG_EPOCH_MICROS,
            -PG_EPOCH_MICROS,
        ];
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Years about -290,000 to 290,000 around 2000, then near 2026.
            values.push((seed as i64) >> 1);
            values.push(((seed >> 16) % 1_000_000_000_000_000) as i64 + 820_000_000_000_000);
        }
        for micros in values {
            let raw = micros.to_be_bytes();
            let ours = Timestamptz::from_sql(&Type::TIMESTAMPTZ, &raw).map(|t| t.0);
            let chrono = DateTime::<Utc>::from_sql(&Type::TIMESTAMPTZ, &raw);
            match (ours, chrono) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{micros}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{micros}: {a:?} vs {b:?}"),
            }
        }
        assert!(Timestamptz::from_sql(&Type::TIMESTAMPTZ, &[0; 7]).is_err());
        assert!(Timestamptz::accepts(&Type::TIMESTAMPTZ));
        assert!(!Timestamptz::accepts(&Type::TIMESTAMP));
    }
}
