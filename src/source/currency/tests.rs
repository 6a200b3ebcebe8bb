use super::*;

const GOOD: &str =
    "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = 1.1172\njpy = 175.68\nISK = 136\n";

#[test]
fn the_shipped_rates_file_is_valid_and_dated() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/fx_rates.toml");
    let t = RateTable::load(&path, Currency::EUR).unwrap();
    assert!(t.len() >= 30, "{}", t.len());
    assert_eq!(
        t.as_of_ms(),
        crate::source::time::parse_date_ms("2026-10-30")
    );
    assert_eq!(t.to_base(6000.0, Currency::JPY), Some(34.15));
}

#[test]
fn rates_convert_into_the_base_rounded_to_its_minor_unit() {
    let t = RateTable::parse("fx.toml", GOOD, Currency::EUR).unwrap();
    assert_eq!(t.to_base(6000.0, Currency::JPY), Some(34.15));
    assert_eq!(t.to_base(1.0, Currency::USD), Some(0.9));
    assert_eq!(t.to_base(136.0, Currency::ISK), Some(1.0));
    assert_eq!(t.to_base(42.24, Currency::EUR), Some(42.24));
    assert_eq!(t.to_base(1.0, Currency::CHF), None, "no rate: never 1:1");
    assert_eq!(t.len(), 4);
    // A base with no minor units rounds to whole units.
    let jpy = RateTable::parse(
        "fx.toml",
        "base = \"JPY\"\nas_of = \"2026-10-30\"\n[rates]\nEUR = 0.0056922\n",
        Currency::JPY,
    )
    .unwrap();
    assert_eq!(jpy.to_base(34.15, Currency::EUR), Some(5999.0));
}

/// Every way a rates file can be wrong names the file, line and column.
#[test]
fn bad_rates_files_say_where_and_what() {
    let cases = [
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = -1.1\n",
            "fx.toml:4:7:",
            "finite number > 0",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = 0\n",
            "fx.toml:4:7:",
            "> 0",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nABC = 1.1\n",
            "fx.toml:4:1:",
            "'ABC' is not an ISO 4217",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = 1.1\nusd = 1.2\n",
            "fx.toml:",
            "USD has two rates",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nEUR = 2\n",
            "fx.toml:4:7:",
            "base currency's rate must be 1",
        ),
        (
            "base = \"USD\"\nas_of = \"2026-10-30\"\n[rates]\nJPY = 150\n",
            "fx.toml:1:8:",
            "currency.base is EUR",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-02-30\"\n[rates]\n",
            "fx.toml:2:9:",
            "expected YYYY-MM-DD",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = \"1.1\"\n",
            "fx.toml:4:7:",
            "invalid type",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\nrate = 3\n[rates]\n",
            "fx.toml:3:1:",
            "unknown field `rate`",
        ),
        (
            "base = \"EUR\"\n[rates]\n",
            "fx.toml:1:1:",
            "missing field `as_of`",
        ),
        (
            "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates\n",
            "fx.toml:3:",
            "",
        ),
    ];
    for (text, at, what) in cases {
        let err = RateTable::parse("fx.toml", text, Currency::EUR)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(at) && err.contains(what), "{text:?}: {err}");
    }
    let err = RateTable::load(Path::new("/nonexistent/fx.toml"), Currency::EUR).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/fx.toml: cannot read"),
        "{err}"
    );
}

/// Every ISO 4217 currency with minor units is accepted in any case; the
/// special codes without minor units and anything not in the list are not.
#[test]
fn every_iso_4217_code_in_any_case() {
    let mut letters = Vec::new();
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            for c in b'A'..=b'Z' {
                letters.push([a, b, c]);
            }
        }
    }
    let mut accepted = 0;
    for code in letters {
        let upper = std::str::from_utf8(&code).unwrap();
        let want = Currency::from_code(upper).filter(|c| c.exponent().is_some());
        let lower = upper.to_ascii_lowercase();
        let mixed = format!("{}{}", &lower[..1], &upper[1..]);
        for text in [upper, lower.as_str(), mixed.as_str()] {
            assert_eq!(parse_currency(text), want, "{text}");
        }
        accepted += usize::from(want.is_some());
    }
    assert!(accepted > 150, "{accepted}");
    assert_eq!(parse_currency("XAU"), None);
    assert_eq!(parse_currency("EURO"), None);
    assert_eq!(minor_units(Currency::JPY), 0);
    assert_eq!(minor_units(Currency::BHD), 3);
}

#[test]
fn a_bad_reload_keeps_the_installed_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fx.toml");
    std::fs::write(&path, GOOD).unwrap();
    let source = RatesSource {
        base: Currency::EUR,
        path: Some(path.clone()),
    };
    let _installing = TEST_INSTALL_LOCK.lock();
    let first = source.reload().unwrap();
    std::fs::write(
        &path,
        "base = \"EUR\"\nas_of = \"2026-10-31\"\n[rates]\nUSD = oops\n",
    )
    .unwrap();
    let err = source.reload().unwrap_err().to_string();
    assert!(err.contains("fx.toml:4:7"), "{err}");
    let installed = with_installed(|t| (t.as_of_ms(), t.to_base(1.0, Currency::USD)));
    assert_eq!(installed, (first.as_of_ms(), Some(0.9)));
    let base_only = RatesSource {
        base: Currency::EUR,
        path: None,
    }
    .load()
    .unwrap();
    assert_eq!(base_only.to_base(1.0, Currency::USD), None);
    assert_eq!(base_only.to_base(1.0, Currency::EUR), Some(1.0));
}

/// `digits` with `scale` decimals as a decimal text (`11172`, 4 -> `1.1172`).
fn decimal_text(digits: u128, scale: u32) -> String {
    let s = format!("{digits:0>width$}", width = scale as usize + 1);
    let (int, frac) = s.split_at(s.len() - scale as usize);
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// The slow exact reference: `units / 10^from` divided by `digits / 10^scale`,
/// in big integers, rounded half away from zero to `to` decimals, as the `f64`
/// nearest to that decimal; `None` at 2^53 minor units or more (no `f64`
/// there tells minor units apart).
fn exact_reference(units: u64, from: u32, digits: u64, scale: u32, to: u32) -> Option<f64> {
    use num_bigint::BigUint;
    let ten = |e: u32| BigUint::from(10u32).pow(e);
    let num = BigUint::from(units) * ten(to + scale);
    let den = BigUint::from(digits) * ten(from);
    let (q, r) = (&num / &den, &num % &den);
    let q = if r.clone() * 2u32 >= den { q + 1u32 } else { q };
    let q: u128 = q.try_into().ok().filter(|&q| q < 1 << 53)?;
    Some(decimal_text(q, to).parse().unwrap())
}

proptest::proptest! {
    /// Every amount, in currencies with 0, 2, 3 and 4 minor units, converted
    /// with any decimal rate into bases with 0, 2 and 3, is the exact decimal
    /// quotient rounded once (f64 division was one minor unit off in 74,759
    /// of 2.8M handbook-scale conversions).
    #[test]
    fn conversions_round_the_exact_decimal_quotient(
        units in proptest::prop_oneof![0u64..100_000, 0u64..10_000_000_000, 0u64..(1 << 53)],
        currency in proptest::sample::select(vec![Currency::JPY, Currency::USD, Currency::BHD, Currency::CLF]),
        base in proptest::sample::select(vec![Currency::EUR, Currency::JPY, Currency::KWD]),
        digits in proptest::prop_oneof![1u64..100_000, 1u64..1_000_000_000_000],
        scale in 0u32..=12,
    ) {
        proptest::prop_assume!(currency != base);
        let from = u32::from(minor_units(currency));
        let to = u32::from(minor_units(base));
        let rate = decimal_text(u128::from(digits), scale);
        let file = format!("base = \"{}\"\nas_of = \"2026-10-30\"\n[rates]\n{} = {rate}\n", base.code(), currency.code());
        let table = RateTable::parse("fx.toml", &file, base).unwrap();
        let amount: f64 = decimal_text(u128::from(units), from).parse().unwrap();
        let want = exact_reference(units, from, digits, scale, to);
        proptest::prop_assume!(want.is_some());
        proptest::prop_assert_eq!(table.to_base(amount, currency), want, "{} {} at {}", amount, currency.code(), rate);
    }
}

/// Rates are read as the decimals written, in every TOML number form.
#[test]
fn rates_are_the_decimals_written() {
    let cases = [
        ("1.1172", Some((11172, 4))),
        ("0.83380", Some((8338, 4))),
        ("136", Some((136, 0))),
        ("+1_000.5", Some((10005, 1))),
        ("5e-3", Some((5, 3))),
        ("1.5E2", Some((150, 0))),
        ("1e-19", None),
        ("123456789012345678901", None),
    ];
    for (text, want) in cases {
        let got = exact_rate(text).map(|r| (r.digits, r.scale));
        assert_eq!(got, want, "{text}");
    }
    let err = RateTable::parse(
        "fx.toml",
        "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nUSD = 1e-19\n",
        Currency::EUR,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("fx.toml:4:7:") && err.contains("at most 19"),
        "{err}"
    );
}
