#!/usr/bin/env python3
"""Times the handbook's own pandas feature transformation (chapter 3, "Baseline
feature transformation": weekend/night flags, per-customer rolling count and mean
over 1/7/30 days, per-terminal rolling count and risk with a 7-day delay) on the
full transactions file, for comparison with `fraudstream features`.

    python3 scripts/handbook_pandas_features.py ../shared/data/handbook/transactions.csv.gz
"""
import sys
import time

import pandas as pd


def customer_features(tx, windows=(1, 7, 30)):
    tx = tx.sort_values("TX_DATETIME")
    tx.index = tx.TX_DATETIME
    for w in windows:
        amount_sum = tx["TX_AMOUNT"].rolling(f"{w}D").sum()
        count = tx["TX_AMOUNT"].rolling(f"{w}D").count()
        tx[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = list(count)
        tx[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = list(amount_sum / count)
    tx.index = tx.TRANSACTION_ID
    return tx


def terminal_features(tx, delay=7, windows=(1, 7, 30)):
    tx = tx.sort_values("TX_DATETIME")
    tx.index = tx.TX_DATETIME
    fraud_delay = tx["TX_FRAUD"].rolling(f"{delay}D").sum()
    count_delay = tx["TX_FRAUD"].rolling(f"{delay}D").count()
    for w in windows:
        fraud_all = tx["TX_FRAUD"].rolling(f"{delay + w}D").sum()
        count_all = tx["TX_FRAUD"].rolling(f"{delay + w}D").count()
        count = count_all - count_delay
        tx[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = list(count)
        tx[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = list((fraud_all - fraud_delay) / count)
    tx.index = tx.TRANSACTION_ID
    tx.fillna(0, inplace=True)
    return tx


def main(path):
    df = pd.read_csv(path, parse_dates=["TX_DATETIME"])
    start = time.perf_counter()
    df["TX_DURING_WEEKEND"] = df.TX_DATETIME.apply(lambda d: int(d.weekday() >= 5))
    df["TX_DURING_NIGHT"] = df.TX_DATETIME.apply(lambda d: int(d.hour <= 6))
    df = df.groupby("CUSTOMER_ID", group_keys=False).apply(customer_features)
    df = df.sort_values("TX_DATETIME").reset_index(drop=True)
    df = df.groupby("TERMINAL_ID", group_keys=False).apply(terminal_features)
    df = df.sort_values("TX_DATETIME").reset_index(drop=True)
    elapsed = time.perf_counter() - start
    print(f"pandas: {len(df)} rows, features in {elapsed:.1f} s ({len(df) / elapsed:.0f} rows/s)")


if __name__ == "__main__":
    main(sys.argv[1])
