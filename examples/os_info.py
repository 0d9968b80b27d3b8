import os


def main():
    return {"platform": os.name, "cpu_count": os.cpu_count()}
