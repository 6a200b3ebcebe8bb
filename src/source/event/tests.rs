use super::*;
use crate::source::currency::RateTable;

const NOW: i64 = 1_700_000_000_000;

fn rates() -> RateTable {
    RateTable::parse(
        "fx.toml",
        "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = 1.1172\nJPY = 175.68\nBHD = 0.42\n",
        Currency::EUR,
    )
    .unwrap()
}

fn parse(s: &str) -> Result<PaymentEvent<'_>, InvalidEvent> {
    parse_event_with(s.as_bytes(), &Limits::default(), &rates(), NOW)
}

/// A valid event with `field` set to the raw JSON `value` (added or replaced).
fn with(field: &str, value: &str) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        r#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":12.5,"currency":"EUR"}"#,
    )
    .unwrap();
    v.insert(field.into(), serde_json::from_str(value).unwrap());
    serde_json::Value::Object(v).to_string()
}

const GOOD: &str = r#"{"event_id":"e1","ts":"2023-11-14T22:13:20Z","account_id":"a1","terminal_id":"t1","amount":12.5,"currency":"EUR","pan":"4111111111111111","extra":{"x":[1,2]}}"#;

#[test]
fn good_event_borrows_and_ignores_unknown_fields() {
    let ev = parse(GOOD).unwrap();
    assert!(matches!(ev.event_id, Cow::Borrowed("e1")));
    assert_eq!(ev.card(), "a1");
    assert_eq!(ev.amount.0, 12.5);
    assert_eq!(ev.original_amount.0, 12.5);
    assert_eq!(ev.ts.0, NOW);
}

#[test]
fn epoch_millis_and_string_amount_are_accepted() {
    let ev = parse(r#"{"event_id":"e","ts":1699999999000,"account_id":"a","terminal_id":"t","amount":"3.10","currency":"USD","mcc":"5411"}"#).unwrap();
    assert_eq!(ev.ts.0, 1_699_999_999_000);
    assert_eq!(ev.original_amount.0, 3.10);
    assert_eq!(ev.amount.0, 2.77, "3.10 USD at 1.1172 per EUR, to the cent");
    assert_eq!(ev.mcc, Some(Mcc(5411)));
}

#[test]
fn every_kind_of_bad_input_is_classified() {
    use InvalidReason::*;
    let cases: &[(&[u8], InvalidReason)] = &[
        (b"\xff\xfe{}", InvalidUtf8),
        (b"not json", InvalidJson),
        (br#"{"event_id":"e","ts":1,"#, InvalidJson),
        (br#"{"event_id":"e","ts":1700000000"#, InvalidJson),
        (br#"{"event_id":"e","currency":"ABC","#, InvalidJson),
        (br#"{"ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, MissingField),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":7,"terminal_id":"t","amount":1,"currency":"EUR"}"#, WrongType),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":-1,"currency":"EUR"}"#, InvalidAmount),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":-0.01,"currency":"EUR"}"#, InvalidAmount),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1e300,"currency":"EUR"}"#, InvalidAmount),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":"NaN","currency":"EUR"}"#, InvalidAmount),
        (br#"{"event_id":"e","ts":"yesterday","account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, InvalidTimestamp),
        (br#"{"event_id":"e","ts":99999999999999,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, FutureTimestamp),
        (br#"{"event_id":"e","ts":-5,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, InvalidTimestamp),
        (br#"{"event_id":"","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, InvalidField),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"euro"}"#, InvalidCurrency),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"ABC"}"#, InvalidCurrency),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"CHF"}"#, NoFxRate),
        (br#"{"event_id":"e","ts":1700000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, TimestampInSeconds),
        (br#"{"event_id":"e","ts":0,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, TimestampBeforeMin),
        (br#"{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR","country":"Germany"}"#, InvalidField),
    ];
    for (input, want) in cases {
        let got = parse_event_with(input, &Limits::default(), &rates(), NOW).unwrap_err();
        assert_eq!(
            got.reason,
            *want,
            "input {:?}: {got}",
            String::from_utf8_lossy(input)
        );
    }
    let deep = format!(r#"{{"extra":{}"#, "[".repeat(10_000));
    assert_eq!(parse(&deep).unwrap_err().reason, InvalidReason::InvalidJson);
    let huge = with("event_id", &format!("\"{}\"", "x".repeat(1000)));
    assert_eq!(
        parse(&huge).unwrap_err().reason,
        InvalidReason::InvalidField
    );
    let big = vec![b' '; 70_000];
    assert_eq!(
        parse_event_with(&big, &Limits::default(), &rates(), NOW)
            .unwrap_err()
            .reason,
        InvalidReason::Oversized
    );
}

/// Field case 02: `e-ms` is decided; `e-s` (epoch seconds) and `e-zero` are
/// dead-lettered, each with a reason that says why.
#[test]
fn field_case_02_epoch_seconds_and_zero_are_rejected() {
    let lines = include_str!("../../../tests/fixtures/field-cases/02-epoch-seconds/payments.jsonl");
    let now = 1_764_525_600_000 + 60_000;
    let outcomes: Vec<(String, Result<i64, InvalidEvent>)> = lines
        .lines()
        .map(|l| {
            let id = serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string();
            let parsed = parse_event_with(l.as_bytes(), &Limits::default(), &rates(), now);
            (id, parsed.map(|ev| ev.ts.0))
        })
        .collect();
    assert_eq!(outcomes[0], ("e-ms".into(), Ok(1_764_525_600_000)));
    let e_s = outcomes[1].1.as_ref().unwrap_err();
    assert_eq!(outcomes[1].0, "e-s");
    assert_eq!(e_s.reason, InvalidReason::TimestampInSeconds);
    assert!(
        e_s.detail.contains("epoch seconds") && e_s.detail.contains("2025-11-30T18:00:00"),
        "{e_s}"
    );
    let e_zero = outcomes[2].1.as_ref().unwrap_err();
    assert_eq!(outcomes[2].0, "e-zero");
    assert_eq!(e_zero.reason, InvalidReason::TimestampBeforeMin);
    assert!(
        e_zero
            .detail
            .contains("1970-01-01T00:00:00.000Z is before processing.min_event_time 2000-01-01"),
        "{e_zero}"
    );
}

/// Every numeric time of 10 or 11 digits is rejected as seconds; a time under
/// the floor is rejected with its own reason; 2018 replays stay accepted.
#[test]
fn event_time_plausibility_across_values() {
    use InvalidReason::*;
    let reason = |ts: &str, floor: i64| {
        let limits = Limits {
            min_event_time_ms: floor,
            ..Limits::default()
        };
        parse_event_with(with("ts", ts).as_bytes(), &limits, &rates(), NOW)
            .err()
            .map(|e| e.reason)
    };
    let floor = DEFAULT_MIN_EVENT_TIME_MS;
    for secs in [
        1_000_000_000i64,
        1_522_540_800,
        1_699_999_999,
        1_764_525_600,
        99_999_999_999,
    ] {
        assert_eq!(
            reason(&secs.to_string(), floor),
            Some(TimestampInSeconds),
            "{secs}"
        );
        assert_eq!(
            reason(&secs.to_string(), 0),
            Some(TimestampInSeconds),
            "{secs}"
        );
    }
    for early in [
        "0",
        "1",
        "999999999",
        "100000000000",
        "946684799999",
        "\"1999-12-31T23:59:59Z\"",
    ] {
        assert_eq!(reason(early, floor), Some(TimestampBeforeMin), "{early}");
    }
    for fine in [
        "946684800000",
        "1522540800000",
        "\"2018-04-01T00:00:00Z\"",
        "1699999999999",
    ] {
        assert_eq!(reason(fine, floor), None, "{fine}");
    }
    // With a clock far ahead (rules tests), times the state cannot hold
    // (microseconds, nanoseconds, after 2106) are rejected, not clamped.
    let far = |ts: &str| {
        parse_event_with(
            with("ts", ts).as_bytes(),
            &Limits::default(),
            &rates(),
            i64::MAX / 4,
        )
        .err()
        .map(|e| e.reason)
    };
    assert_eq!(far("\"2106-02-07T06:28:15.999Z\""), None);
    assert_eq!(far("\"2500-01-01T00:00:00Z\""), Some(InvalidTimestamp));
    for huge in [
        "\"2106-02-07T06:28:16Z\"",
        "1764525600000000",
        "1764525600000000000",
    ] {
        assert_eq!(far(huge), Some(InvalidTimestamp), "{huge}");
        assert_eq!(reason(huge, floor), Some(FutureTimestamp), "{huge}");
    }
    // The floor is configurable: a replay of 2018 data with the floor at 2018-04-01.
    assert_eq!(reason("1522540800000", 1_522_540_800_000), None);
    assert_eq!(
        reason("1522540799999", 1_522_540_800_000),
        Some(TimestampBeforeMin)
    );
}

/// Codes in any case are the same currency; anything that is not an ISO 4217
/// code of a payment currency is `invalid_currency`; a code without a rate is
/// `no_fx_rate`, never converted 1:1.
#[test]
fn currencies_are_validated_normalised_and_converted() {
    use InvalidReason::*;
    let amount_and_code = |cur: &str, amount: &str| {
        parse(&with("currency", cur).replace("12.5", amount))
            .map(|ev| (ev.amount.0, ev.currency.to_string()))
            .map_err(|e| e.reason)
    };
    for eur in ["\"EUR\"", "\"eur\"", "\"Eur\"", "\"eUR\""] {
        assert_eq!(
            amount_and_code(eur, "12.5"),
            Ok((12.5, "EUR".into())),
            "{eur}"
        );
    }
    assert_eq!(
        amount_and_code("\"jpy\"", "6000"),
        Ok((34.15, "JPY".into()))
    );
    assert_eq!(amount_and_code("\"USD\"", "100"), Ok((89.51, "USD".into())));
    // BHD has three minor units.
    assert_eq!(
        amount_and_code("\"BHD\"", "1.005"),
        Ok((2.39, "BHD".into()))
    );
    for bad in [
        "\"ABC\"", "\"EU\"", "\"EURO\"", "\"\"", "\"XAU\"", "\"XXX\"", "\"E1R\"", "\"ÉUR\"",
    ] {
        assert_eq!(amount_and_code(bad, "1"), Err(InvalidCurrency), "{bad}");
    }
    assert_eq!(amount_and_code("7", "1"), Err(WrongType));
    for no_rate in ["\"CHF\"", "\"GBP\"", "\"chf\"", "\"HRK\""] {
        assert_eq!(amount_and_code(no_rate, "1"), Err(NoFxRate), "{no_rate}");
    }
    let err = parse(&with("currency", "\"CHF\"")).unwrap_err();
    assert!(
        err.detail.contains("no rate for CHF into EUR in fx.toml"),
        "{err}"
    );
}

/// Amounts may have as many decimals as the currency's minor units, no more.
#[test]
fn amounts_are_held_to_the_currencys_minor_units() {
    let ok =
        |cur: &str, amount: &str| parse(&with("currency", cur).replace("12.5", amount)).is_ok();
    for (cur, fine, too_fine) in [
        (
            "\"EUR\"",
            ["19.99", "0.01", "1e3", "999999999.99"],
            &[
                "19.999",
                "0.001",
                "0.015",
                "1.0000001",
                // Within the old check's tolerance of a whole cent, and above 5000.
                "5000.000000000001",
                "\"5000.000000000001\"",
                "0.010000000000001",
                "999999.9900000001",
            ][..],
        ),
        (
            "\"JPY\"",
            ["6000", "1", "6000.0", "123456789"],
            &["6000.5", "0.1", "1.01", "99.9", "6000.000000001"][..],
        ),
        (
            "\"BHD\"",
            ["1.005", "0.001", "2", "17.25"],
            &["1.0005", "0.0001", "3.1415", "2.0001", "1.0050000000001"][..],
        ),
    ] {
        for a in fine {
            assert!(ok(cur, a), "{a} {cur}");
        }
        for a in too_fine {
            assert!(!ok(cur, a), "{a} {cur}");
        }
    }
    // Every decimal with the currency's digits fits; one more non-zero digit,
    // however far down, does not (as a JSON number and as a string).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (cur, k) = [("\"EUR\"", 2), ("\"JPY\"", 0), ("\"BHD\"", 3)][(x % 3) as usize];
        let units = (x >> 8) % 10u64.pow(8 + k);
        let decimal = |units: u64, k: u32| {
            let s = format!("{units:0>w$}", w = k as usize + 1);
            let (int, frac) = s.split_at(s.len() - k as usize);
            if k == 0 {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        };
        let fine = decimal(units, k);
        assert!(
            ok(cur, &fine) && ok(cur, &format!("\"{fine}\"")),
            "{fine} {cur}"
        );
        let extra = 1 + (x >> 40) % 9;
        let zeros = 1 + (x >> 50) % 4;
        let finer = decimal(units * 10u64.pow(zeros as u32) + extra, k + zeros as u32);
        assert!(!ok(cur, &finer), "{finer} {cur}");
    }
    let err = parse(&with("currency", "\"JPY\"").replace("12.5", "6000.5")).unwrap_err();
    assert_eq!(err.reason, InvalidReason::InvalidAmount);
    assert!(err.detail.contains("0 minor units of JPY"), "{err}");
}

#[test]
fn country_codes_are_upper_cased_and_checked() {
    for (input, want) in [
        ("\"de\"", "DE"),
        ("\"De\"", "DE"),
        ("\"DE\"", "DE"),
        ("\"deu\"", "DEU"),
        ("\"\\u0064e\"", "DE"),
    ] {
        let text = with("country", input);
        let ev = parse(&text).unwrap();
        assert_eq!(ev.country.as_deref(), Some(want), "{input}");
    }
    for bad in ["\"D\"", "\"DEUT\"", "\"D1\"", "\"\"", "\"Ä\"", "4"] {
        assert!(parse(&with("country", bad)).is_err(), "{bad}");
    }
}

#[test]
fn errors_never_contain_card_numbers() {
    let bad = r#"{"event_id":"e","ts":1700000000000,"account_id":"4111 1111 1111 1111","terminal_id":"t","amount":"4111111111111111x","currency":"EUR"}"#;
    let err = parse(bad).unwrap_err();
    assert!(!err.detail.contains("4111"), "{}", err.detail);
    let err = parse(r#"{"event_id":"e","ts":1700000000000,"account_id":4111111111111111,"terminal_id":"t","amount":1,"currency":"EUR"}"#).unwrap_err();
    assert!(!err.to_string().contains("4111111111111111"), "{err}");
}

/// Both sides: numbers that can be card numbers are masked, in every layout;
/// ordinary numbers of any length that fail the Luhn check stay readable.
#[test]
fn only_numbers_that_can_be_card_numbers_are_masked() {
    let masked = [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "378282246310005",
        "4222222222222",
        "6011000990139424",
        "3530111333300000",
        "6304000000000000000",
        "12345678904111111111111111",
    ];
    for pan in masked {
        let out = redact_pans(&format!("card {pan} declined"));
        assert!(
            out.contains("[REDACTED]") && !out.contains("1111"),
            "{pan}: {out}"
        );
    }
    for text in [
        "timestamp is 123456789012 s in the future",
        "message is 70000 bytes, limit 65536",
        "offset 1234567890123 of partition 3",
        "event time 1764525600000 rejected",
        "4111111111111112",
        "4111 1111 1111 1112",
        "amount 1234 on 2018-04-01",
    ] {
        assert_eq!(redact_pans(text), text);
    }
    assert_eq!(
        redact_pans("ünïcode 5555555555554444 and 1234"),
        "ünïcode [REDACTED] and 1234"
    );
}

/// The Luhn check against a reference: the digit sum of doubled odd positions.
#[test]
fn luhn_matches_its_definition_on_random_numbers() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    let mut passed = 0;
    for _ in 0..20_000 {
        let len = rng.gen_range(13..=19);
        let digits: Vec<u8> = (0..len).map(|_| rng.gen_range(0..10)).collect();
        let reference: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(k, &d)| {
                let v = u32::from(d) * if k % 2 == 1 { 2 } else { 1 };
                v / 10 + v % 10
            })
            .sum();
        let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        let want = reference % 10 == 0;
        passed += usize::from(want);
        assert_eq!(redact_pans(&text) == "[REDACTED]", want, "{text}");
    }
    assert!(
        (1500..2500).contains(&passed),
        "about one in ten passes: {passed}"
    );
}
