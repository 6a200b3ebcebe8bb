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
