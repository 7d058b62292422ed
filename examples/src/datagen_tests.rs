use super::*;
use polars::prelude::{CsvReadOptions, ParquetReader, SerReader};
use std::collections::HashSet;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jointly-datagen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spec(bank: usize, partner: usize, overlap: usize, messy: bool, format: DataFormat) -> DatagenSpec {
    DatagenSpec {
        bank_rows: bank,
        partner_rows: partner,
        overlap,
        seed: 7,
        messy,
        format,
    }
}

fn read_csv(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_owned()))
        .unwrap()
        .finish()
        .unwrap()
}

/// Canonical 11 national digits, or None for an invalid phone.
fn normalize(raw: Option<&str>) -> Option<String> {
    let digits: String = raw?.chars().filter(char::is_ascii_digit).collect();
    let national = digits
        .strip_prefix("0086")
        .or_else(|| digits.strip_prefix("86").filter(|d| d.len() == 11))
        .unwrap_or(&digits);
    (national.len() == 11 && national.starts_with('1')).then(|| national.to_owned())
}

/// (distinct phones, invalid rows, duplicate rows)
fn recount(df: &DataFrame, phone_col: &str) -> (HashSet<String>, usize, usize) {
    let col = df.column(phone_col).unwrap().str().unwrap().clone();
    let (mut set, mut invalid, mut valid_rows) = (HashSet::new(), 0, 0);
    for v in col.iter() {
        match normalize(v) {
            Some(p) => {
                valid_rows += 1;
                set.insert(p);
            }
            None => invalid += 1,
        }
    }
    let dups = valid_rows - set.len();
    (set, invalid, dups)
}

fn check_truth(bank: usize, partner: usize, overlap: usize, messy: bool) {
    let dir = tmp(&format!("truth-{bank}-{partner}-{overlap}-{messy}"));
    let g = generate(&spec(bank, partner, overlap, messy, DataFormat::Csv), &dir).unwrap();
    let b = read_csv(&g.bank_path);
    let p = read_csv(&g.partner_path);
    let (bs, bi, bd) = recount(&b, "phone");
    let (ps, pi, pd) = recount(&p, "mobile");
    let t = &g.truth;
    assert_eq!(
        (bs.len(), bi, bd),
        (t.bank_distinct, t.bank_invalid_rows, t.bank_duplicate_rows)
    );
    assert_eq!(
        (ps.len(), pi, pd),
        (
            t.partner_distinct,
            t.partner_invalid_rows,
            t.partner_duplicate_rows
        )
    );
    assert_eq!(bs.intersection(&ps).count(), t.overlap);
    assert_eq!(b.height(), bank + t.bank_duplicate_rows + t.bank_invalid_rows);
    let ids: HashSet<_> = b.column("customer_id").unwrap().str().unwrap().iter().collect();
    assert_eq!(ids.len(), b.height());
    if messy && bank >= 1000 {
        assert!(t.bank_duplicate_rows > 0 && t.bank_invalid_rows > 0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ground_truth_matches_recount() {
    check_truth(5000, 3000, 1200, true);
    check_truth(5000, 3000, 1200, false);
}

#[test]
fn overlap_edge_cases() {
    check_truth(2000, 1500, 0, true);
    check_truth(1500, 1500, 1500, true);
    check_truth(1, 1, 1, true);
    check_truth(1, 1, 0, false);
    check_truth(0, 10, 0, true);
}

#[test]
fn overlap_too_large_is_an_error() {
    let err = generate(&spec(5, 3, 4, false, DataFormat::Csv), &tmp("err"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("overlap"));
}

#[test]
fn zero_rows_write_header_only() {
    let dir = tmp("zero");
    let g = generate(&spec(0, 0, 0, true, DataFormat::Csv), &dir).unwrap();
    let bank = std::fs::read_to_string(&g.bank_path).unwrap();
    assert_eq!(
        bank,
        "customer_id,phone,email,age,aum_tier,has_credit_card,deposit_balance,city\n"
    );
    let partner = std::fs::read_to_string(&g.partner_path).unwrap();
    assert_eq!(
        partner,
        "user_id,mobile,email,interest,spend_band,annual_spend,signup_channel\n"
    );
    let g = generate(&spec(0, 0, 0, true, DataFormat::Parquet), &dir).unwrap();
    let df = ParquetReader::new(File::open(&g.bank_path).unwrap())
        .finish()
        .unwrap();
    assert_eq!((df.height(), df.width()), (0, 8));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deterministic_by_seed() {
    for format in [DataFormat::Csv, DataFormat::Parquet] {
        let (d1, d2, d3) = (tmp("det1"), tmp("det2"), tmp("det3"));
        let s = spec(3000, 2000, 500, true, format);
        let a = generate(&s, &d1).unwrap();
        let b = generate(&s, &d2).unwrap();
        let c = generate(&DatagenSpec { seed: 8, ..s }, &d3).unwrap();
        let read = |p: &Path| std::fs::read(p).unwrap();
        assert_eq!(read(&a.bank_path), read(&b.bank_path));
        assert_eq!(read(&a.partner_path), read(&b.partner_path));
        assert_ne!(read(&a.bank_path), read(&c.bank_path));
        for d in [d1, d2, d3] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

#[test]
fn parquet_round_trip_matches_csv() {
    let dir = tmp("pq");
    let csv = generate(&spec(300_000, 1000, 100, true, DataFormat::Csv), &dir).unwrap();
    let pq = generate(&spec(300_000, 1000, 100, true, DataFormat::Parquet), &dir).unwrap();
    for (c, p) in [
        (&csv.bank_path, &pq.bank_path),
        (&csv.partner_path, &pq.partner_path),
    ] {
        let c = read_csv(c);
        let p = ParquetReader::new(File::open(p).unwrap()).finish().unwrap();
        assert_eq!(c.get_column_names(), p.get_column_names());
        assert_eq!(c.height(), p.height());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn person_phone_is_unique_e164() {
    let mut seen = HashSet::new();
    for i in 0..100_000u64 {
        let p = person_phone(i);
        assert!(p.len() == 14 && p.starts_with("+861"), "{p}");
        assert!(p[1..].bytes().all(|b| b.is_ascii_digit()), "{p}");
        assert!(PREFIXES.contains(&&p[3..6]), "{p}");
        assert!(seen.insert(p));
    }
    assert_eq!(person_phone(0), "+8613800000000");
}

#[test]
fn messy_formats_normalize_to_person_phone() {
    let d = national_digits(123_456);
    for v in 0..6 {
        let mut s = String::new();
        write_phone(&mut s, &d, v);
        assert_eq!(
            normalize(Some(&s)).map(|n| format!("+86{n}")),
            Some(person_phone(123_456))
        );
    }
    for bad in INVALID_PHONES {
        assert_eq!(normalize(Some(bad)), None, "{bad}");
    }
}
