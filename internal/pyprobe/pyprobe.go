// Package pyprobe holds the Python that scripts use to ask the kernel what
// they run with: the executor's isolation self-test, and the tests that
// check the same facts through the service.
package pyprobe

// ProcStatus is Python that defines proc_status(): the fields of the
// calling process's /proc/self/status, e.g. proc_status()["CapEff"].
// Scripts that ask the kernel what they run with start with it.
const ProcStatus = `
def proc_status():
    status = {}
    with open('/proc/self/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            status[key] = value.strip()
    return status

`
