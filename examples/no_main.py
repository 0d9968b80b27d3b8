# No top-level main(): rejected with 400 before any of this runs.
def run():
    return {"answer": 4}


print("never printed")
