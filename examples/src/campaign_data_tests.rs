use std::collections::{HashMap, HashSet};

use jointly_protocol::ids::normalize::{IdKind, Normalizer};

use super::*;

fn spec(messy: bool) -> CampaignSpec {
    CampaignSpec {
        people: People {
            bank: 3_000,
            partner: 4_000,
            overlap: 2_000,
        },
        exposures: 20_000,
        conversions: 3_000,
        windows: 30,
        seed: 5,
        messy,
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Splits a generated line; only the conversions' bad values are quoted,
/// and they are never needed here.
fn cells(line: &str) -> Vec<&str> {
    line.split(',').collect()
}

#[test]
fn same_seed_same_bytes() {
    let (a, b, c) = (tempfile::tempdir(), tempfile::tempdir(), tempfile::tempdir());
    let (a, b, c) = (a.expect("tempdir"), b.expect("tempdir"), c.expect("tempdir"));
    let s = spec(true);
    let x = generate_campaign(&s, a.path()).expect("generate");
    let y = generate_campaign(&s, b.path()).expect("generate");
    let z = generate_campaign(&CampaignSpec { seed: 6, ..s }, c.path()).expect("generate");
    let read = |p: &Path| std::fs::read(p).expect("read");
    for (x, y, z) in [
        (&x.exposures_path, &y.exposures_path, &z.exposures_path),
        (&x.conversions_path, &y.conversions_path, &z.conversions_path),
        (&x.groups_path, &y.groups_path, &z.groups_path),
    ] {
        assert_eq!(read(x), read(y));
        assert_ne!(read(x), read(z));
    }
}

#[test]
fn truth_counts_match_the_files() {
    for messy in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(messy);
        let d = generate_campaign(&s, dir.path()).expect("generate");
        let t = &d.truth;
        let exposures = lines(&d.exposures_path);
        assert_eq!(exposures[0], "mobile,channel,campaign,ts");
        assert_eq!(exposures.len() as u64 - 1, t.exposure_rows);
        assert_eq!(
            t.exposure_rows,
            s.exposures as u64 + t.exposure_duplicate_rows + t.exposure_invalid_rows
        );
        assert_eq!(t.exposures_by_channel.iter().sum::<u64>(), s.exposures as u64);
        let conversions = lines(&d.conversions_path);
        assert_eq!(conversions[0], "phone,ts,type,value");
        assert_eq!(conversions.len() as u64 - 1, t.conversion_rows);
        let genuine = t.conversion_rows - t.conversion_invalid_rows;
        assert_eq!(genuine, s.conversions as u64);
        assert_eq!(
            genuine,
            t.caused_conversions.iter().sum::<u64>() + t.baseline_conversions + t.conversions_outside_period
        );
        let groups = lines(&d.groups_path);
        assert_eq!(groups.len() as u64 - 1, t.group_rows);
        assert_eq!(
            t.group_rows,
            s.people.partner as u64 + t.group_duplicate_rows + t.group_invalid_rows
        );
        assert_eq!(t.overlap_test + t.overlap_control, s.people.overlap as u64);
        if messy {
            assert!(t.exposure_duplicate_rows > 0 && t.exposure_invalid_rows > 0);
            assert!(t.conversion_invalid_rows > 0 && t.conversion_bad_values > 0);
            assert!(t.group_duplicate_rows > 0 && t.group_invalid_rows > 0);
        } else {
            let dirty = t.exposure_duplicate_rows
                + t.exposure_invalid_rows
                + t.conversion_invalid_rows
                + t.conversion_bad_values
                + t.group_duplicate_rows
                + t.group_invalid_rows;
            assert_eq!(dirty, 0);
        }
        // Caused conversions are about the share aimed at, baseline the rest.
        let caused = t.caused_conversions.iter().sum::<u64>() as f64 / s.conversions as f64;
        assert!((0.4..0.55).contains(&caused), "caused share {caused}");
    }
}

#[test]
fn exposures_have_the_promised_structure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = generate_campaign(&spec(false), dir.path()).expect("generate");
    let t = &d.truth;
    let normalizer = Normalizer::default();
    let id = |raw: &str| {
        normalizer
            .normalize(IdKind::Phone, raw)
            .expect("clean data has valid phones")
    };

    let groups: HashMap<String, String> = lines(&d.groups_path)[1..]
        .iter()
        .map(|l| {
            let c = cells(l);
            (id(c[0]), c[1].to_owned())
        })
        .collect();
    let (mut before, mut midnight, mut ties) = (0, 0, 0);
    let mut previous = (String::new(), 0);
    let mut exposed: HashMap<String, Vec<i64>> = HashMap::new();
    for line in &lines(&d.exposures_path)[1..] {
        let c = cells(line);
        let person = id(c[0]);
        // The control group sees no exposure.
        assert_eq!(groups[&person], "test");
        assert!(CHANNELS.contains(&c[1]) && CAMPAIGNS.contains(&c[2]));
        let ts = timestamp::parse(c[3]).expect("clean data has valid times");
        assert!(ts >= t.period_start - PRE_PERIOD_DAYS * DAY && ts < t.period_end);
        before += u64::from(ts < t.period_start);
        midnight += u64::from(ts % DAY == 0);
        ties += u64::from(previous == (person.clone(), ts));
        previous = (person.clone(), ts);
        exposed.entry(person).or_default().push(ts);
    }
    assert!(before > 0 && midnight > 0);
    assert!(ties >= t.exposure_tied_rows && t.exposure_tied_rows > 0);

    let mut per_person: HashMap<String, Vec<i64>> = HashMap::new();
    let mut conversion_ties = 0;
    for line in &lines(&d.conversions_path)[1..] {
        let c = cells(line);
        assert!(CONVERSION_TYPES.contains(&c[2]));
        if c[2] == "account_open" {
            assert_eq!(c[3], "0.00");
        }
        let ts = timestamp::parse(c[1]).expect("clean data has valid times");
        let list = per_person.entry(id(c[0])).or_default();
        conversion_ties += u64::from(list.contains(&ts));
        list.push(ts);
    }
    assert!(conversion_ties > 0);
    assert!(per_person.values().any(|l| l.len() >= 3));
    // Some exposures come after a conversion of the same person.
    let late = per_person.iter().any(|(person, conversions)| {
        let first = conversions.iter().min().copied().unwrap_or(i64::MAX);
        exposed
            .get(person)
            .is_some_and(|e| e.iter().any(|&ts| ts > first))
    });
    assert!(late);
    // Conversions without exposure: bank-only persons convert too.
    let people = spec(false).people;
    let bank_only: HashSet<String> = (people.overlap as u64..people.bank as u64)
        .map(crate::datagen::person_phone)
        .collect();
    assert!(per_person.keys().any(|p| bank_only.contains(p)));
}

#[test]
fn empty_sides_write_headers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = CampaignSpec {
        people: People {
            bank: 0,
            partner: 0,
            overlap: 0,
        },
        ..spec(true)
    };
    let d = generate_campaign(&s, dir.path()).expect("generate");
    assert_eq!(lines(&d.exposures_path).len(), 1);
    assert_eq!(lines(&d.conversions_path).len(), 1);
    assert_eq!(lines(&d.groups_path).len(), 1);
    assert_eq!(d.truth.lift_abs, 0.0);

    // No shared persons: no conversion is caused, all are baseline.
    let s = CampaignSpec {
        people: People {
            bank: 500,
            partner: 500,
            overlap: 0,
        },
        ..spec(false)
    };
    let d = generate_campaign(&s, dir.path()).expect("generate");
    assert_eq!(d.truth.caused_conversions.iter().sum::<u64>(), 0);
    assert_eq!(lines(&d.conversions_path).len(), 1 + s.conversions);
}

#[test]
fn bad_specs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = spec(false);
    s.people.overlap = 3_001;
    let err = generate_campaign(&s, dir.path()).expect_err("overlap too large");
    assert!(err.to_string().contains("overlap"));
    let s = CampaignSpec {
        windows: 0,
        ..spec(false)
    };
    let err = generate_campaign(&s, dir.path()).expect_err("no windows");
    assert!(err.to_string().contains("window"));
}
