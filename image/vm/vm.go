// Package vm is the contract between make test-image's host side
// (image/vmtest) and the init of the virtual machine it boots
// (image/vminit): the configuration the host writes into the directory it
// shares with the guest, and the files the guest writes back there.
//
// The guest boots the image's root filesystem the way Cloud Run's second
// generation runs a container: the image's entrypoint with its environment,
// PID 1 of a pid namespace of its own, on a cgroup v2-only hierarchy. Nothing
// leaves the guest but through the shared directory and the host's loopback
// port forwards.
package vm

import "path/filepath"

// RootDisk is the guest's device of the image's root file system, an ext4
// image attached read-only; the guest lays a tmpfs over it, as Cloud Run
// gives a container a writable root that does not persist.
const RootDisk = "/dev/vda"

// ShareTag is the 9p mount tag of the directory shared with the host,
// read-write.
const ShareTag = "pyexec-share"

// ConfigFile is the name, in the shared directory, of the JSON Config the
// host writes before boot.
const ConfigFile = "vm.json"

// PowerOffFile, created in the shared directory by the host, powers the guest
// off.
const PowerOffFile = "poweroff"

// GuestIP is the guest's address on qemu's user-mode network, where the
// host's port forwards arrive.
const GuestIP = "10.0.2.15"

// Config is what one boot runs.
type Config struct {
	// CgroupReadOnly mounts the cgroup2 file system read-only, as a
	// container without a delegated cgroup sees it.
	CgroupReadOnly bool `json:"cgroup_read_only"`
	// UserNamespace, when set, runs each service as root of a user namespace
	// with only this range of uids and gids mapped, as Cloud Run does for jobs
	// and worker pools. Nil runs them as the guest's real root.
	UserNamespace *IDMap `json:"user_namespace,omitempty"`
	// Services are started in order, each in pid and mount namespaces of its
	// own over the same root file system.
	Services []Service `json:"services"`
	// Install are files of the shared directory copied into the container's
	// root file system (its writable layer) before any service starts: a
	// test binary that runs in the guest as a service does.
	Install []File `json:"install,omitempty"`
}

// File is one file to install: From, a name in the shared directory, to To,
// an absolute path in the container's root, executable.
type File struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// IDMap maps Count ids from Inside (in the namespace) to Outside (in the
// guest).
type IDMap struct {
	Inside  int `json:"inside"`
	Outside int `json:"outside"`
	Count   int `json:"count"`
}

// Service is one container: the image's entrypoint with its environment.
type Service struct {
	// Name names the service's files in the shared directory.
	Name string `json:"name"`
	// Argv is the image's ENTRYPOINT followed by its CMD.
	Argv []string `json:"argv"`
	// Env is the image's environment with the service's settings after it.
	Env []string `json:"env"`
	// Dir is the image's working directory ("" for /).
	Dir string `json:"dir"`
	// Held services start only when the host creates their StartFile, so
	// that a second service does not share the guest's CPUs with the first
	// one's start-up.
	Held bool `json:"held,omitempty"`
}

// LogFile is where the guest copies the service's stdout and stderr.
func LogFile(share, name string) string { return filepath.Join(share, name+".log") }

// StartedFile appears when the guest has started the service's process.
func StartedFile(share, name string) string { return filepath.Join(share, name+".started") }

// ExitFile appears, holding an Exit, when the service's process has ended.
func ExitFile(share, name string) string { return filepath.Join(share, name+".exit") }

// StartFile, created by the host, starts a held service.
func StartFile(share, name string) string { return filepath.Join(share, "start-"+name) }

// StopFile, created by the host, makes the guest send the service SIGTERM.
func StopFile(share, name string) string { return filepath.Join(share, "stop-"+name) }

// Exit is what ExitFile holds: how the service's process ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal ended the process.
	Code int `json:"code"`
	// Signal names the signal that ended it, if one did.
	Signal string `json:"signal,omitempty"`
	// AfterStopMS is how long the process took to exit after it was sent
	// SIGTERM (0 if it was not).
	AfterStopMS int64 `json:"after_stop_ms"`
	// Error is why the service could not be started or waited for.
	Error string `json:"error,omitempty"`
}
