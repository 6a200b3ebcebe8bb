use super::*;
use proptest::prelude::*;

const HEADER: &str = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD";

fn contract() -> RowContract {
    let rates = RateTable::parse(
        "fx.toml",
        "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nJPY = 175.68\n",
        Currency::EUR,
    )
    .unwrap();
    RowContract {
        limits: Limits::default(),
        rates: Arc::new(rates),
        now_ms: 1_800_000_000_000,
    }
}

/// Every row of `text` (as a file): `Ok` rows as `(id, debug of the row)`,
/// bad rows as `(line, reason)`.
fn read(text: &str) -> Vec<Result<(String, String), (u64, &'static str)>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    std::fs::write(&path, text).unwrap();
    let mut r = HandbookReader::open_with(&path, contract()).unwrap();
    let mut out = Vec::new();
    loop {
        match r.next_row() {
            Ok(Some(row)) => out.push(Ok((row.transaction_id.to_string(), format!("{row:?}")))),
            Ok(None) => return out,
            Err(CsvError::BadRow { line, reason, .. }) => out.push(Err((line, reason))),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The live contract's kinds of bad value, each rejected with the live
/// parser's reason and the row's line; reading goes on after each.
#[test]
fn rows_are_held_to_the_live_contract() {
    let rows = [
        ("1,2018-04-01 00:00:00,0,0,-20.00,0", Some("invalid_amount")),
        ("2,2018-04-01 00:00:00,0,0,-0.01,0", Some("invalid_amount")),
        ("3,2018-04-01 00:00:00,0,0,NaN,0", Some("invalid_amount")),
        ("4,2018-04-01 00:00:00,0,0,inf,0", Some("invalid_amount")),
        ("5,2018-04-01 00:00:00,0,0,-inf,0", Some("invalid_amount")),
        ("6,2018-04-01 00:00:00,0,0,1.234,0", Some("invalid_amount")),
        ("7,2018-04-01 00:00:00,0,0,abc,0", Some("invalid_amount")),
        (
            "8,2018-04-31 05:00:00,0,0,1.00,0",
            Some("invalid_timestamp"),
        ),
        (
            "9,2018-02-29 05:00:00,0,0,1.00,0",
            Some("invalid_timestamp"),
        ),
        (
            "10,2018-04-01 24:00:00,0,0,1.00,0",
            Some("invalid_timestamp"),
        ),
        (
            "11,1999-12-31 23:59:59,0,0,1.00,0",
            Some("timestamp_before_min"),
        ),
        (
            "12,2099-01-01 00:00:00,0,0,1.00,0",
            Some("future_timestamp"),
        ),
        ("13,2018-04-01 00:00:00,,0,1.00,0", Some("invalid_field")),
        ("14,2018-04-01 00:00:00,0,0,1.00,2", Some("invalid_field")),
        ("15,2018-04-01 00:00:00,0,0,1.00", Some("malformed_row")),
        ("16,2018-04-01 00:00:00,0,0,1e10,0", Some("invalid_amount")),
        ("17,2018-04-01 00:00:00,0,0,42.24,1", None),
        ("18,2018-04-01 00:00:00,0,0,0.00,0", None),
        // Amount text as the live parser reads a decimal string.
        ("19,2018-04-01 00:00:00,0,0,1e2,0", Some("invalid_amount")),
        ("20,2018-04-01 00:00:00,0,0,+5.00,0", Some("invalid_amount")),
        (
            "21,2018-04-01 00:00:00,0,0, 10.00,0",
            Some("invalid_amount"),
        ),
        (
            "22,2018-04-01 00:00:00,0,0,\"10,00\",0",
            Some("invalid_amount"),
        ),
        (
            "23,2018-04-01 00:00:00,0,0,10.000000000001,0",
            Some("invalid_amount"),
        ),
        ("24,2018-04-01 00:00:00,0,0,\"10.50\",0", None),
    ];
    let text: String = std::iter::once(HEADER)
        .chain(rows.iter().map(|r| r.0))
        .map(|l| format!("{l}\n"))
        .collect();
    let got = read(&text);
    assert_eq!(got.len(), rows.len());
    for (k, ((row, want), got)) in rows.iter().zip(&got).enumerate() {
        match want {
            Some(reason) => {
                assert_eq!(got.as_ref().unwrap_err(), &(k as u64 + 2, *reason), "{row}")
            }
            None => assert!(got.is_ok(), "{row}: {got:?}"),
        }
    }
}

#[test]
fn optional_columns_map_onto_the_event_fields() {
    let text = "CURRENCY,TX_FRAUD,CHANNEL,MCC,COUNTRY,IP,DEVICE_ID,CARD_ID,TX_AMOUNT,TERMINAL_ID,CUSTOMER_ID,TX_DATETIME,TRANSACTION_ID\n\
                jpy,0,ecom,5411,de,10.0.0.1,dev-1,card-9,6000,t-1,c-1,2018-04-01 10:00:00,e-1\n\
                ,1,,,,,,,12.50,t-2,c-2,2018-04-01 10:00:01,e-2\n\
                ABC,0,,,,,,,1,t,c,2018-04-01 10:00:02,e-3\n\
                EUR,0,,,Germany,,,,1,t,c,2018-04-01 10:00:02,e-4\n\
                CHF,0,,,,,,,1,t,c,2018-04-01 10:00:02,e-5\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    std::fs::write(&path, text).unwrap();
    let mut r = HandbookReader::open_with(&path, contract()).unwrap();
    let row = r.next_row().unwrap().unwrap();
    assert_eq!(
        (
            row.transaction_id,
            row.customer_id,
            row.card(),
            row.terminal_id
        ),
        ("e-1", "c-1", "card-9", "t-1")
    );
    assert_eq!(
        (row.amount, row.original_amount, row.currency),
        (34.15, 6000.0, Currency::JPY)
    );
    assert_eq!(
        (
            row.device_id,
            row.ip,
            row.country.as_deref(),
            row.mcc,
            row.channel
        ),
        (
            Some("dev-1"),
            Some("10.0.0.1"),
            Some("DE"),
            Some(Mcc(5411)),
            Some("ecom")
        )
    );
    let row = r.next_row().unwrap().unwrap();
    assert_eq!(
        (row.card(), row.currency, row.amount, row.fraud),
        ("c-2", Currency::EUR, 12.5, true)
    );
    assert_eq!(
        (
            row.card_id,
            row.device_id,
            row.ip,
            row.country,
            row.mcc,
            row.channel
        ),
        (None, None, None, None, None, None)
    );
    let owned = OwnedTxRow::of(&row);
    assert_eq!(format!("{:?}", owned.view()), format!("{row:?}"));
    for want in ["invalid_currency", "invalid_field", "no_fx_rate"] {
        match r.next_row() {
            Err(CsvError::BadRow { reason, .. }) => assert_eq!(reason, want),
            other => panic!("{other:?}"),
        }
    }
    assert!(r.next_row().unwrap().is_none());
}

/// A byte-order mark, CRLF, quoted fields (with commas, quotes and a line
/// break) and a required column after the 32nd read as a plain file does.
#[test]
fn bom_quotes_crlf_and_wide_files() {
    let padding: Vec<String> = (0..40).map(|i| format!("X{i}")).collect();
    let header = format!("{},{HEADER}", padding.join(","));
    let blanks = ",".repeat(40);
    let text = format!(
        "\u{feff}{header}\r\n{blanks}\"7\",2018-04-01 00:00:00,\"c,1\",\"t \"\"2\"\"\",\"42.24\",0\r\n{blanks}8,2018-04-01 00:00:01,\"multi\nline\",t,1.00,1\r\n"
    );
    let got = read(&text);
    let first = got[0].as_ref().unwrap();
    assert_eq!(first.0, "7");
    assert!(
        first.1.contains("customer_id: \"c,1\"")
            && first.1.contains("terminal_id: \"t \\\"2\\\"\""),
        "{}",
        first.1
    );
    assert!(got[1].as_ref().unwrap().1.contains("multi\\nline"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    std::fs::write(
        &path,
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TX_AMOUNT,TX_FRAUD\n",
    )
    .unwrap();
    let err = HandbookReader::open(&path).err().unwrap().to_string();
    assert!(err.ends_with("tx.csv:1: header has no column 'TERMINAL_ID'; required: TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD"), "{err}");
    std::fs::write(&path, format!("{HEADER},tx_amount\n")).unwrap();
    let err = HandbookReader::open(&path).err().unwrap().to_string();
    assert!(err.contains("column 'TX_AMOUNT' appears twice"), "{err}");
}

proptest! {
    /// Any order of the columns, extra columns included, reads the same rows.
    #[test]
    fn column_order_does_not_matter(order in Just((0..9).collect::<Vec<usize>>()).prop_shuffle()) {
        let base_header = [HEADER, "TX_FRAUD_SCENARIO", "COUNTRY", "EXTRA"].join(",");
        let names: Vec<&str> = base_header.split(',').collect();
        let rows = [
            "1,2018-04-01 00:00:00,0,0,42.24,0,0,de,x",
            "2,2018-04-01 03:00:17,1,1,22.35,1,2,,y",
            "3,2018-04-31 03:00:17,1,1,22.35,1,2,,y",
            "4,2018-04-02 03:00:17,1,1,-3,1,2,FR,z",
        ];
        let permute = |line: &str| {
            let f: Vec<&str> = line.split(',').collect();
            order.iter().map(|&i| f[i]).collect::<Vec<_>>().join(",")
        };
        let text = |perm: bool| -> String {
            std::iter::once(base_header.as_str())
                .chain(rows)
                .map(|l| if perm { permute(l) } else { l.to_string() } + "\n")
                .collect()
        };
        prop_assert_eq!(names.len(), order.len());
        prop_assert_eq!(read(&text(true)), read(&text(false)));
    }
}
