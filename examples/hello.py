def main():
    print("Calculating...")
    return {"answer": 2 + 2}
