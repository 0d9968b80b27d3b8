import os

import pandas as pd


# Regular files left under outputs/ come back with the answer, as downloads.
def main():
    df = pd.DataFrame({"n": range(1, 6)})
    df["square"] = df["n"] ** 2
    os.makedirs("outputs", exist_ok=True)
    df.to_csv("outputs/result.csv", index=False)
    return {"rows": len(df), "file": "outputs/result.csv"}
