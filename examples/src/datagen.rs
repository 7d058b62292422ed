//! Synthetic bank and partner customer tables with a chosen overlap.
//!
//! Persons are numbered globally: the overlap is `0..overlap` on both sides, bank-only persons
//! follow up to `bank_rows`, partner-only persons come after that. Every row's attributes are
//! drawn from a seeded RNG while rows are streamed to disk, so memory stays at one `u64` per row
//! (plus one row group when writing Parquet).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use polars::prelude::{
    Column, DataFrame, DataType, Field, IntoColumn, ParquetWriter, Schema, StringChunkedBuilder,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    Csv,
    Parquet,
}

impl DataFormat {
    pub fn extension(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::Parquet => "parquet",
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatagenSpec {
    /// Distinct bank customers (before duplicates/invalid rows are added).
    pub bank_rows: usize,
    /// Distinct partner users.
    pub partner_rows: usize,
    /// Customers present in both; must be <= min(bank_rows, partner_rows).
    pub overlap: usize,
    /// Same seed -> byte-identical files.
    pub seed: u64,
    /// Formatting variants, duplicates, invalid rows.
    pub messy: bool,
    pub format: DataFormat,
}

pub struct GeneratedData {
    pub bank_path: PathBuf,
    pub partner_path: PathBuf,
    pub truth: GroundTruth,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GroundTruth {
    pub bank_distinct: usize,
    pub partner_distinct: usize,
    pub overlap: usize,
    pub bank_invalid_rows: usize,
    pub partner_invalid_rows: usize,
    pub bank_duplicate_rows: usize,
    pub partner_duplicate_rows: usize,
}

/// Mobile prefixes valid in libphonenumber's CN metadata (`1(?:[38]\d|[59][0-35-9]|…)\d{8}`).
const PREFIXES: [&str; 10] = [
    "138", "139", "150", "151", "158", "186", "187", "188", "135", "136",
];
const DOMAINS: [&str; 5] = [
    "example.com",
    "example.com",
    "mail.example.cn",
    "example.net",
    "corp.example.org",
];
pub(crate) const INVALID_PHONES: [&str; 8] = [
    "",
    "N/A",
    "12345",
    "unknown",
    "n/a",
    "000",
    "+86 123",
    "tel: none",
];
pub const CITIES: [&str; 8] = [
    "Beijing",
    "Shanghai",
    "Guangzhou",
    "Shenzhen",
    "Hangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
];
pub const INTERESTS: [&str; 6] = ["travel", "electronics", "fashion", "groceries", "auto", "dining"];
const FLUSH_ROWS: usize = 128 * 1024;
const KIND_SHIFT: u32 = 62;
const KIND_PERSON: u64 = 0;
const KIND_DUP: u64 = 1;
const KIND_INVALID: u64 = 2;
const LOW_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// The 11 national digits of person `i` (ASCII).
pub(crate) fn national_digits(i: u64) -> [u8; 11] {
    let n = PREFIXES.len() as u64;
    let mut out = [0u8; 11];
    out[..3].copy_from_slice(PREFIXES[(i % n) as usize].as_bytes());
    let mut rest = (i / n) % 100_000_000;
    for slot in out[3..].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out
}

/// The canonical E.164 phone of synthetic person `i` (a valid Chinese mobile number, unique per i
/// for i < 10^9).
pub fn person_phone(i: u64) -> String {
    let d = national_digits(i);
    format!("+86{}", String::from_utf8_lossy(&d))
}

pub(crate) fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn weighted(weights: &[u32], r: u32) -> usize {
    let total: u32 = weights.iter().sum();
    let mut r = r % total;
    for (i, w) in weights.iter().enumerate() {
        if r < *w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

fn money(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Clone, Copy)]
enum Cell {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    Money(f64),
}

pub(crate) struct Side {
    file: &'static str,
    id_col: &'static str,
    phone_col: &'static str,
    id_prefix: char,
    extra: &'static [(&'static str, DataType)],
    /// Weights of the six phone formatting variants used when messy.
    phone_weights: [u32; 6],
    salt: u64,
    fill: fn(&mut StdRng, &mut Vec<Cell>),
}

fn fill_bank(rng: &mut StdRng, out: &mut Vec<Cell>) {
    let age = rng.random_range(18..=90i64);
    // Pareto-like: most balances small, a few very large.
    let u: f64 = rng.random_range(1e-9..1.0);
    let balance = money((300.0 / u.powf(1.0 / 1.3) - 300.0 + rng.random_range(0.0..50.0)).min(5e7));
    let tier = match balance {
        b if b < 10_000.0 => "T1",
        b if b < 50_000.0 => "T2",
        b if b < 200_000.0 => "T3",
        b if b < 1_000_000.0 => "T4",
        _ => "T5",
    };
    out.extend([
        Cell::Int(age),
        Cell::Str(tier),
        Cell::Bool(rng.random_bool(0.45)),
        Cell::Money(balance),
        Cell::Str(CITIES[weighted(&[20, 20, 12, 14, 10, 9, 8, 7], rng.random())]),
    ]);
}

fn fill_partner(rng: &mut StdRng, out: &mut Vec<Cell>) {
    let interest = INTERESTS[rng.random_range(0..INTERESTS.len())];
    let (band, spend) = match weighted(&[50, 35, 15], rng.random()) {
        0 => ("low", rng.random_range(50.0..2_000.0)),
        1 => ("mid", rng.random_range(2_000.0..20_000.0)),
        _ => ("high", rng.random_range(20_000.0..250_000.0)),
    };
    let channel = ["app", "web", "store"][weighted(&[55, 30, 15], rng.random())];
    out.extend([
        Cell::Str(interest),
        Cell::Str(band),
        Cell::Money(money(spend)),
        Cell::Str(channel),
    ]);
}

pub(crate) const BANK: Side = Side {
    file: "bank",
    id_col: "customer_id",
    phone_col: "phone",
    id_prefix: 'C',
    extra: &[
        ("age", DataType::Int64),
        ("aum_tier", DataType::String),
        ("has_credit_card", DataType::Boolean),
        ("deposit_balance", DataType::Float64),
        ("city", DataType::String),
    ],
    phone_weights: [35, 20, 15, 15, 5, 10],
    salt: 0xB4A1_0000_0000_0001,
    fill: fill_bank,
};

pub(crate) const PARTNER: Side = Side {
    file: "partner",
    id_col: "user_id",
    phone_col: "mobile",
    id_prefix: 'U',
    extra: &[
        ("interest", DataType::String),
        ("spend_band", DataType::String),
        ("annual_spend", DataType::Float64),
        ("signup_channel", DataType::String),
    ],
    phone_weights: [5, 20, 45, 15, 10, 5],
    salt: 0x9A27_0000_0000_0002,
    fill: fill_partner,
};

impl Side {
    /// The formatting variant (of [`write_phone`]) a person's phone usually has on this side.
    pub(crate) fn phone_variant(&self, person: u64, seed: u64) -> usize {
        weighted(&self.phone_weights, mix(person ^ self.salt ^ seed) as u32)
    }

    fn schema(&self) -> Schema {
        let mut fields = vec![
            Field::new(self.id_col.into(), DataType::String),
            Field::new(self.phone_col.into(), DataType::String),
            Field::new("email".into(), DataType::String),
        ];
        fields.extend(self.extra.iter().map(|(n, t)| Field::new((*n).into(), t.clone())));
        Schema::from_iter(fields)
    }
}

pub(crate) fn write_phone(out: &mut String, d: &[u8; 11], variant: usize) {
    let s = |a: usize, b: usize| std::str::from_utf8(&d[a..b]).unwrap_or_default();
    let (p, m, e) = (s(0, 3), s(3, 7), s(7, 11));
    let _ = match variant {
        0 => write!(out, "+86 {p}-{m}-{e}"),
        1 => write!(out, "+86{p}{m}{e}"),
        2 => write!(out, "{p}{m}{e}"),
        3 => write!(out, "{p} {m} {e}"),
        4 => write!(out, "0086 {p} {m} {e}"),
        _ => write!(out, "+86 ({p}) {m} {e}"),
    };
}

fn write_email(out: &mut String, person: u64, messy: bool, rng: &mut StdRng) {
    let domain = DOMAINS[(mix(person ^ 0xE) % DOMAINS.len() as u64) as usize];
    if !messy {
        let _ = write!(out, "user{person}@{domain}");
        return;
    }
    let mut local = format!("user{person}@{domain}");
    match weighted(&[65, 10, 15, 10], rng.random()) {
        0 => {}
        1 => local.make_ascii_uppercase(),
        2 => local[..1].make_ascii_uppercase(),
        _ => {
            let bits: u64 = rng.random();
            local = local
                .chars()
                .enumerate()
                .map(|(k, c)| {
                    if bits >> (k % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
        }
    }
    let (lead, trail) = (rng.random_bool(0.06), rng.random_bool(0.06));
    let _ = write!(
        out,
        "{}{local}{}",
        if lead { " " } else { "" },
        if trail { "  " } else { "" }
    );
}

struct Row {
    id: String,
    phone: String,
    email: String,
    extra: Vec<Cell>,
}

trait Sink {
    fn push(&mut self, row: &Row) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

struct CsvSink {
    w: BufWriter<File>,
    line: Vec<u8>,
    path: PathBuf,
}

impl CsvSink {
    fn new(file: File, side: &Side, path: &Path) -> Result<Self> {
        let mut s = CsvSink {
            w: BufWriter::with_capacity(1 << 20, file),
            line: Vec::new(),
            path: path.to_owned(),
        };
        let mut names = vec![side.id_col, side.phone_col, "email"];
        names.extend(side.extra.iter().map(|(n, _)| *n));
        s.line.extend_from_slice(names.join(",").as_bytes());
        s.line.push(b'\n');
        s.flush_line()?;
        Ok(s)
    }

    fn flush_line(&mut self) -> Result<()> {
        self.w
            .write_all(&self.line)
            .with_context(|| write_err(&self.path))?;
        self.line.clear();
        Ok(())
    }
}

fn write_err(path: &Path) -> String {
    format!(
        "cannot write {}; check free disk space and that the output directory is writable",
        path.display()
    )
}

impl Sink for CsvSink {
    fn push(&mut self, row: &Row) -> Result<()> {
        let l = &mut self.line;
        csv_field(l, &row.id);
        l.push(b',');
        csv_field(l, &row.phone);
        l.push(b',');
        csv_field(l, &row.email);
        for cell in &row.extra {
            l.push(b',');
            match cell {
                Cell::Str(s) => csv_field(l, s),
                Cell::Int(v) => l.extend_from_slice(v.to_string().as_bytes()),
                Cell::Bool(b) => l.extend_from_slice(if *b { b"true" } else { b"false" }),
                Cell::Money(v) => {
                    let _ = write!(l, "{v:.2}");
                }
            }
        }
        l.push(b'\n');
        self.flush_line()
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.w.flush().with_context(|| write_err(&self.path))
    }
}

enum ColBuf {
    Str(StringChunkedBuilder),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    F64(Vec<f64>),
}

struct ParquetSink {
    schema: Schema,
    writer: polars::io::parquet::write::BatchedWriter<BufWriter<File>>,
    cols: Vec<ColBuf>,
    rows: usize,
    path: PathBuf,
}

impl ParquetSink {
    fn new(file: File, side: &Side, path: &Path) -> Result<Self> {
        let schema = side.schema();
        let writer = ParquetWriter::new(BufWriter::with_capacity(1 << 20, file))
            .batched(&schema)
            .with_context(|| write_err(path))?;
        let mut s = ParquetSink {
            schema,
            writer,
            cols: Vec::new(),
            rows: 0,
            path: path.to_owned(),
        };
        s.reset();
        Ok(s)
    }

    fn reset(&mut self) {
        self.rows = 0;
        self.cols = self
            .schema
            .iter()
            .map(|(name, dt)| match dt {
                DataType::Int64 => ColBuf::Int(Vec::with_capacity(FLUSH_ROWS)),
                DataType::Boolean => ColBuf::Bool(Vec::with_capacity(FLUSH_ROWS)),
                DataType::Float64 => ColBuf::F64(Vec::with_capacity(FLUSH_ROWS)),
                _ => ColBuf::Str(StringChunkedBuilder::new(name.clone(), FLUSH_ROWS)),
            })
            .collect();
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let names: Vec<_> = self.schema.iter_names().cloned().collect();
        let columns: Vec<Column> = std::mem::take(&mut self.cols)
            .into_iter()
            .zip(names)
            .map(|(c, name)| match c {
                ColBuf::Str(b) => b.finish().into_column(),
                ColBuf::Int(v) => Column::new(name, v),
                ColBuf::Bool(v) => Column::new(name, v),
                ColBuf::F64(v) => Column::new(name, v),
            })
            .collect();
        let df = DataFrame::new(self.rows, columns).context("building a parquet row group")?;
        self.writer
            .write_batch(&df)
            .with_context(|| write_err(&self.path))?;
        self.reset();
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn push(&mut self, row: &Row) -> Result<()> {
        let strs = [row.id.as_str(), row.phone.as_str(), row.email.as_str()];
        for (col, s) in self.cols.iter_mut().zip(strs) {
            match col {
                ColBuf::Str(b) => b.append_value(s),
                _ => bail!("internal error: id, phone and email must be string columns"),
            }
        }
        for (col, cell) in self.cols.iter_mut().skip(3).zip(row.extra.iter().copied()) {
            match (col, cell) {
                (ColBuf::Str(b), Cell::Str(s)) => b.append_value(s),
                (ColBuf::Int(v), Cell::Int(x)) => v.push(x),
                (ColBuf::Bool(v), Cell::Bool(x)) => v.push(x),
                (ColBuf::F64(v), Cell::Money(x)) => v.push(x),
                _ => bail!("internal error: cell does not match column type"),
            }
        }
        self.rows += 1;
        if self.rows >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.flush()?;
        self.writer.finish().with_context(|| write_err(&self.path))?;
        Ok(())
    }
}

/// Writes one side; `person_of(k)` maps the side-local index `k < distinct` to the global person.
/// Returns (duplicate rows, invalid rows).
fn write_side(
    side: &Side,
    spec: &DatagenSpec,
    distinct: usize,
    person_of: impl Fn(u64) -> u64,
    out_dir: &Path,
) -> Result<(PathBuf, usize, usize)> {
    let path = out_dir.join(format!("{}.{}", side.file, spec.format.extension()));
    let mut rng = StdRng::seed_from_u64(mix(spec.seed ^ side.salt));
    let (dups, invalid) = if spec.messy && distinct > 0 {
        ((distinct * 3 + 50) / 100, (distinct + 50) / 100)
    } else {
        (0, 0)
    };
    let n = distinct as u64;
    let mut plan: Vec<u64> = Vec::with_capacity(distinct + dups + invalid);
    plan.extend(0..n);
    plan.extend((0..dups).map(|_| KIND_DUP << KIND_SHIFT | rng.random_range(0..n)));
    plan.extend(
        (0..invalid).map(|_| KIND_INVALID << KIND_SHIFT | rng.random_range(0..INVALID_PHONES.len() as u64)),
    );
    plan.shuffle(&mut rng);

    let file = File::create(&path).with_context(|| {
        format!(
            "cannot create {}; check that the output directory is writable",
            path.display()
        )
    })?;
    let mut sink: Box<dyn Sink> = match spec.format {
        DataFormat::Csv => Box::new(CsvSink::new(file, side, &path)?),
        DataFormat::Parquet => Box::new(ParquetSink::new(file, side, &path)?),
    };
    let mut row = Row {
        id: String::new(),
        phone: String::new(),
        email: String::new(),
        extra: Vec::new(),
    };
    let id_width = if side.id_prefix == 'C' { 7 } else { 8 };
    for (row_no, entry) in plan.into_iter().enumerate() {
        row.id.clear();
        row.phone.clear();
        row.email.clear();
        row.extra.clear();
        let _ = write!(row.id, "{}{:0id_width$}", side.id_prefix, row_no + 1);
        let low = entry & LOW_MASK;
        match entry >> KIND_SHIFT {
            KIND_INVALID => {
                row.phone.push_str(INVALID_PHONES[low as usize]);
                if rng.random_bool(0.5) {
                    row.email.push_str("n/a");
                }
            }
            kind => {
                let person = person_of(low);
                let digits = national_digits(person);
                let variant = if !spec.messy {
                    1
                } else {
                    let primary = side.phone_variant(person, spec.seed);
                    if kind == KIND_PERSON {
                        primary
                    } else {
                        (primary + rng.random_range(1..6)) % 6
                    }
                };
                write_phone(&mut row.phone, &digits, variant);
                write_email(&mut row.email, person, spec.messy, &mut rng);
            }
        }
        (side.fill)(&mut rng, &mut row.extra);
        sink.push(&row)?;
    }
    sink.finish()?;
    Ok((path, dups, invalid))
}

/// Writes `bank.{csv|parquet}` and `partner.{csv|parquet}` into `out_dir` (created if missing).
pub fn generate(spec: &DatagenSpec, out_dir: &Path) -> Result<GeneratedData> {
    if spec.overlap > spec.bank_rows.min(spec.partner_rows) {
        bail!(
            "overlap {} exceeds the smaller table ({} bank rows, {} partner rows); choose overlap <= {}",
            spec.overlap,
            spec.bank_rows,
            spec.partner_rows,
            spec.bank_rows.min(spec.partner_rows)
        );
    }
    let persons = (spec.bank_rows + spec.partner_rows - spec.overlap) as u64;
    let limit = 100_000_000 * PREFIXES.len() as u64;
    if persons > limit {
        bail!(
            "{persons} distinct persons requested, but only {limit} distinct phone numbers exist; reduce the row counts"
        );
    }
    std::fs::create_dir_all(out_dir).with_context(|| {
        format!(
            "cannot create output directory {}; check the path and its permissions",
            out_dir.display()
        )
    })?;
    let (overlap, bank_rows) = (spec.overlap as u64, spec.bank_rows as u64);
    let (bank_path, bank_dups, bank_invalid) = write_side(&BANK, spec, spec.bank_rows, |k| k, out_dir)?;
    let partner_of = |k: u64| if k < overlap { k } else { bank_rows + (k - overlap) };
    let (partner_path, partner_dups, partner_invalid) =
        write_side(&PARTNER, spec, spec.partner_rows, partner_of, out_dir)?;
    Ok(GeneratedData {
        bank_path,
        partner_path,
        truth: GroundTruth {
            bank_distinct: spec.bank_rows,
            partner_distinct: spec.partner_rows,
            overlap: spec.overlap,
            bank_invalid_rows: bank_invalid,
            partner_invalid_rows: partner_invalid,
            bank_duplicate_rows: bank_dups,
            partner_duplicate_rows: partner_dups,
        },
    })
}

#[cfg(test)]
#[path = "datagen_tests.rs"]
mod tests;
