//! Reader for transaction files in the handbook's CSV format (optionally gzipped).

use super::time::parse_naive_datetime_ms;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// A problem reading a transactions file.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A required column is missing from the header.
    #[error("{path}: header has no column '{column}'")]
    MissingColumn {
        /// File path.
        path: String,
        /// Column name.
        column: &'static str,
    },
    /// A row could not be parsed.
    #[error("{path}:{line}: {message}")]
    BadRow {
        /// File path.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        message: String,
    },
}

/// One transaction row, borrowing its text from the reader's line buffer.
#[derive(Debug, Clone, Copy)]
pub struct TxRow<'a> {
    /// `TRANSACTION_ID`.
    pub transaction_id: &'a str,
    /// `TX_DATETIME` as epoch milliseconds (UTC).
    pub ts_ms: i64,
    /// `CUSTOMER_ID`: the account and card.
    pub customer_id: &'a str,
    /// `TERMINAL_ID`.
    pub terminal_id: &'a str,
    /// `TX_AMOUNT`.
    pub amount: f64,
    /// `TX_FRAUD`.
    pub fraud: bool,
    /// `TX_FRAUD_SCENARIO` (0 when absent).
    pub scenario: u8,
}

/// A [`TxRow`] with its own text, refilled in place (no allocation once its
/// strings have grown to the longest row).
#[derive(Debug, Clone, Default)]
pub struct OwnedTxRow {
    transaction_id: String,
    customer_id: String,
    terminal_id: String,
    ts_ms: i64,
    amount: f64,
    fraud: bool,
    scenario: u8,
}

impl OwnedTxRow {
    /// A copy of `row`.
    pub fn of(row: &TxRow<'_>) -> Self {
        let mut owned = Self::default();
        owned.fill(row);
        owned
    }

    /// Makes this a copy of `row`.
    pub fn fill(&mut self, row: &TxRow<'_>) {
        for (to, from) in [
            (&mut self.transaction_id, row.transaction_id),
            (&mut self.customer_id, row.customer_id),
            (&mut self.terminal_id, row.terminal_id),
        ] {
            to.clear();
            to.push_str(from);
        }
        (self.ts_ms, self.amount, self.fraud, self.scenario) =
            (row.ts_ms, row.amount, row.fraud, row.scenario);
    }

    /// Event time, epoch ms.
    pub fn ts_ms(&self) -> i64 {
        self.ts_ms
    }

    /// The row, borrowing from this copy.
    pub fn view(&self) -> TxRow<'_> {
        TxRow {
            transaction_id: &self.transaction_id,
            ts_ms: self.ts_ms,
            customer_id: &self.customer_id,
            terminal_id: &self.terminal_id,
            amount: self.amount,
            fraud: self.fraud,
            scenario: self.scenario,
        }
    }
}

const COLUMNS: [&str; 6] = [
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
];

/// Streams rows of a handbook-format CSV file with one reused line buffer.
pub struct HandbookReader {
    path: String,
    input: Box<dyn BufRead>,
    line: String,
    line_no: u64,
    cols: [usize; 6],
    scenario_col: Option<usize>,
    width: usize,
    bytes_read: u64,
}

impl HandbookReader {
    /// Opens `path`; a `.gz` suffix means gzip.
    pub fn open(path: &Path) -> Result<Self, CsvError> {
        let p = path.display().to_string();
        let io = |source| CsvError::Io {
            path: p.clone(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let raw: Box<dyn Read> = if p.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 20,
                file,
            )))
        } else {
            Box::new(file)
        };
        let mut input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 20, raw));
        let mut header = String::new();
        input.read_line(&mut header).map_err(io)?;
        let names: Vec<&str> = header.trim_end().split(',').collect();
        let mut cols = [0; 6];
        for (i, want) in COLUMNS.iter().enumerate() {
            cols[i] = names
                .iter()
                .position(|n| n == want)
                .ok_or(CsvError::MissingColumn {
                    path: p.clone(),
                    column: want,
                })?;
        }
        Ok(Self {
            scenario_col: names.iter().position(|n| *n == "TX_FRAUD_SCENARIO"),
            width: names.len(),
            path: p,
            input,
            line: String::new(),
            line_no: 1,
            cols,
            bytes_read: header.len() as u64,
        })
    }

    /// Uncompressed bytes read so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<TxRow<'_>>, CsvError> {
        self.line.clear();
        let n = self
            .input
            .read_line(&mut self.line)
            .map_err(|source| CsvError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.bytes_read += n as u64;
        self.line_no += 1;
        let mut fields = [""; 32];
        let mut count = 0;
        for f in self.line.trim_end().split(',') {
            if count < fields.len() {
                fields[count] = f;
            }
            count += 1;
        }
        let bad = |message: String| CsvError::BadRow {
            path: self.path.clone(),
            line: self.line_no,
            message,
        };
        if count != self.width {
            return Err(bad(format!(
                "expected {} fields, found {count}",
                self.width
            )));
        }
        let c = &self.cols;
        let ts_ms = parse_naive_datetime_ms(fields[c[1]])
            .ok_or_else(|| bad(format!("bad TX_DATETIME '{}'", fields[c[1]])))?
            .0;
        let amount: f64 = fields[c[4]]
            .parse()
            .map_err(|_| bad(format!("bad TX_AMOUNT '{}'", fields[c[4]])))?;
        let fraud = match fields[c[5]] {
            "0" => false,
            "1" => true,
            other => return Err(bad(format!("bad TX_FRAUD '{other}'"))),
        };
        let scenario = self
            .scenario_col
            .and_then(|i| fields[i].parse().ok())
            .unwrap_or(0);
        Ok(Some(TxRow {
            transaction_id: fields[c[0]],
            ts_ms,
            customer_id: fields[c[2]],
            terminal_id: fields[c[3]],
            amount,
            fraud,
            scenario,
        }))
    }
}
