import pandas as pd


def main():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    return {"sum_a": int(df["a"].sum()), "sum_b": int(df["b"].sum())}
