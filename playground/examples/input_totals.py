# main receives the request's "input" (the JSON box) as its one argument.
def main(data):
    numbers = data["numbers"]
    return {
        "greeting": "Hello, " + data["name"] + "!",
        "count": len(numbers),
        "total": sum(numbers),
    }
