package cgroups

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func readInt(path string) (int64, error) {
	data, err := readControl(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(data), 10, 64)
}

// writeControl writes value to a cgroup control file in one write. Raw
// system calls rather than os.WriteFile: a control file gains nothing from
// Go's poller, which would register and unregister it on every write.
func writeControl(dir, file, value string) error {
	path := filepath.Join(dir, file)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("setting %s to %s: %w", path, value, err)
	}
	return nil
}

// readControl reads a cgroup control file.
func readControl(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var data []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
		if n == 0 {
			return string(data), nil
		}
		data = append(data, buf[:n]...)
	}
}
