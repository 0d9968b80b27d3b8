//go:build linux

// Command vminit is PID 1 of the virtual machine make test-image boots: it
// turns the image's exported root file system into what a container on
// Cloud Run's second generation sees, and runs the image's entrypoint in it.
//
// As init it loads the guest kernel's virtio, disk, ext4, 9p and overlay
// modules, brings up loopback and the user-mode network card (whose only way
// out is the host's loopback port forwards), mounts the image's root file
// system (a read-only disk) under a tmpfs overlay, mounts /proc, /sys and /dev on it and
// makes it the root; the kernel has only the cgroup2 hierarchy mounted, and
// no cgroup v1 hierarchy exists in the guest. Then it starts each
// configured service by re-executing itself as "vminit container" in a
// cgroup of its own (with the memory and pids controllers available to it)
// and new pid, mount and cgroup namespaces (and a user namespace, if
// configured): that stage mounts the namespace's own /proc and a cgroup2
// whose root is the service's cgroup (read-only if the configuration says
// so), and execs the entrypoint, which so becomes PID 1 of its pid namespace,
// as in a container.
//
// Each service's output is copied to a log file in the shared directory and
// to the console. SIGTERM is sent when the host creates the service's stop
// file, and the exit status written back; a held service starts when the
// host creates its start file. The guest powers off when every service has
// ended or the host asks.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyexec/pyexec/image/vm"
)

// containerArg selects the container stage in a re-executed vminit.
const containerArg = "container"

func main() {
	if len(os.Args) == 4 && os.Args[1] == containerArg {
		err := enterContainer(os.Args[2], os.Args[3] == "true")
		fmt.Fprintf(os.Stderr, "vminit: starting the container: %v\n", err)
		os.Exit(127)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: must run as PID 1 of a virtual machine")
		os.Exit(2)
	}
	if err := boot(); err != nil {
		consolef("vminit: %v", err)
	}
	consolef("vminit: powering off")
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// consolef writes a line to the console (PID 1's stdout).
func consolef(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

func boot() error {
	for _, m := range []struct{ source, target, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := mount(m.source, m.target, m.fstype, 0, ""); err != nil {
			return err
		}
	}
	if err := loadModules("/modules"); err != nil {
		return err
	}
	if err := setUpNetwork(); err != nil {
		return err
	}
	// 9p devices register as their modules load; the mount may need a moment.
	share9p := "trans=virtio,version=9p2000.L,msize=512000"
	if err := retry(5*time.Second, func() error { return mount(vm.ShareTag, "/share", "9p", 0, share9p) }); err != nil {
		return err
	}
	share, err := os.OpenRoot("/share")
	if err != nil {
		return err
	}
	// The whole hierarchy, outside the container's root: each container
	// mounts its own, rooted at its cgroup.
	if err := mount("cgroup2", "/cgroup", "cgroup2", cgroupMountFlags, ""); err != nil {
		return err
	}
	cgroups, err := os.OpenRoot("/cgroup")
	if err != nil {
		return err
	}
	cfg, err := readConfig(share)
	if err != nil {
		return err
	}
	if err := mountContainerRoot(cfg); err != nil {
		return err
	}
	if err := install(cfg.Install, share); err != nil {
		return err
	}
	// The same switch as switch_root, without exec: afterwards this
	// process's root is the container's root, and not a chroot, so the
	// namespaces nsjail creates are allowed. The shared directory stays
	// reachable through the share handle only, the cgroup hierarchy through
	// the cgroups handle.
	if err := os.Chdir("/newroot"); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the new root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	return run(cfg, share, cgroups)
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s (%s) on %s: %w", source, fstype, target, err)
	}
	return nil
}

func retry(limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loadModules loads the modules dir/order lists, in its order (the host
// writes dependencies first).
func loadModules(dir string) error {
	order, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		switch {
		case err == nil, errors.Is(err, unix.EEXIST):
		case errors.Is(err, unix.ENODEV):
			// A variant for hardware the guest lacks (crc32c-intel beside
			// crc32c_generic); the mount that needs it says if none loaded.
			consolef("vminit: module %s: %v", name, err)
		default:
			return fmt.Errorf("loading module %s: %w", name, err)
		}
	}
	return nil
}

// setUpNetwork brings up loopback and eth0 with the guest's fixed address on
// qemu's user-mode network. There is no route beyond that network, and qemu
// forwards nothing from it but the host's port forwards.
func setUpNetwork() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	up := func(name string) error {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("reading the flags of %s: %w", name, err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	}
	set := func(name string, req uint, addr [4]byte) error {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(addr[:]); err != nil {
			return err
		}
		return unix.IoctlIfreq(fd, req, ifr)
	}
	if err := up("lo"); err != nil {
		return err
	}
	var ip [4]byte
	if _, err := fmt.Sscanf(vm.GuestIP, "%d.%d.%d.%d", &ip[0], &ip[1], &ip[2], &ip[3]); err != nil {
		return err
	}
	return retry(5*time.Second, func() error {
		if err := set("eth0", unix.SIOCSIFADDR, ip); err != nil {
			return fmt.Errorf("setting the address of eth0: %w", err)
		}
		if err := set("eth0", unix.SIOCSIFNETMASK, [4]byte{255, 255, 255, 0}); err != nil {
			return err
		}
		return up("eth0")
	})
}

func readConfig(share *os.Root) (vm.Config, error) {
	var cfg vm.Config
	data, err := share.ReadFile(vm.ConfigFile)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("reading %s: %w", vm.ConfigFile, err)
	}
	return cfg, nil
}

// mountContainerRoot builds the container's root file system at /newroot:
// the image, a read-only disk, under a writable tmpfs layer, with the
// mounts a container runtime provides.
func mountContainerRoot(cfg vm.Config) error {
	// The disk appears once virtio_blk has probed it.
	if err := retry(5*time.Second, func() error { return mount(vm.RootDisk, "/image", "ext4", unix.MS_RDONLY, "") }); err != nil {
		return err
	}
	if err := mount("tmpfs", "/layer", "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	for _, dir := range []string{"/layer/upper", "/layer/work"} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
	}
	if err := mount("overlay", "/newroot", "overlay", 0, "lowerdir=/image,upperdir=/layer/upper,workdir=/layer/work"); err != nil {
		return err
	}
	for _, m := range []struct {
		source, target, fstype string
		flags                  uintptr
		data                   string
	}{
		{"proc", "/newroot/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/newroot/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/newroot/dev", "devtmpfs", unix.MS_NOSUID, ""},
		{"devpts", "/newroot/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666"},
		{"tmpfs", "/newroot/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	} {
		if err := mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return err
		}
	}
	return nil
}

// install copies files of the shared directory into the container's root.
func install(files []vm.File, share *os.Root) error {
	for _, f := range files {
		data, err := share.ReadFile(f.From)
		if err != nil {
			return fmt.Errorf("installing %s: %w", f.From, err)
		}
		to := filepath.Join("/newroot", filepath.Clean("/"+f.To))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, data, 0o755); err != nil {
			return fmt.Errorf("installing %s as %s: %w", f.From, f.To, err)
		}
	}
	return nil
}

// cgroupMountFlags are those of every cgroup2 mount here, as container
// runtimes mount it.
const cgroupMountFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// service is one started container.
type service struct {
	vm.Service
	cmd    *exec.Cmd
	output sync.WaitGroup // the copies of stdout and stderr
	done   chan struct{}  // closed when the process has been waited for
	exit   vm.Exit
	stop   time.Time // when SIGTERM was sent
}

// run starts the services, relays start and stop requests and reports exits
// until every service has ended or the host asks to power off.
func run(cfg vm.Config, share, cgroups *os.Root) error {
	var started []*service
	held := map[string]vm.Service{}
	startService := func(spec vm.Service) {
		s, err := start(cfg, spec, share, cgroups)
		if err != nil {
			writeJSON(share, vm.ExitFile("", spec.Name), vm.Exit{Code: -1, Error: err.Error()})
			consolef("vminit: %s: %v", spec.Name, err)
			return
		}
		started = append(started, s)
	}
	for _, spec := range cfg.Services {
		if spec.Held {
			held[spec.Name] = spec
			continue
		}
		startService(spec)
	}
	exists := func(name string) bool {
		_, err := share.Stat(name)
		return err == nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if exists(vm.PowerOffFile) {
			return nil
		}
		for name, spec := range held {
			if exists(vm.StartFile("", name)) {
				delete(held, name)
				startService(spec)
			}
		}
		running := 0
		for _, s := range started {
			select {
			case <-s.done:
				continue
			default:
			}
			running++
			if s.stop.IsZero() && exists(vm.StopFile("", s.Name)) {
				s.stop = time.Now()
				_ = s.cmd.Process.Signal(unix.SIGTERM)
				consolef("vminit: %s: sent SIGTERM", s.Name)
			}
		}
		if running == 0 && len(held) == 0 {
			return nil
		}
	}
	return nil
}

// start runs vminit's container stage for spec in new pid and mount
// namespaces (and the configured user namespace).
func start(cfg vm.Config, spec vm.Service, share, cgroups *os.Root) (*service, error) {
	encoded, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	log, err := share.Create(vm.LogFile("", spec.Name))
	if err != nil {
		return nil, err
	}
	cgroup, err := delegateCgroup(cgroups, spec.Name)
	if err != nil {
		return nil, err
	}
	defer cgroup.Close()
	s := &service{Service: spec, done: make(chan struct{})}
	s.cmd = exec.Command("/proc/self/exe", containerArg, string(encoded), strconv.FormatBool(cfg.CgroupReadOnly))
	s.cmd.Env = spec.Env
	attr := &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP,
		UseCgroupFD: true,
		CgroupFD:    int(cgroup.Fd()),
	}
	if m := cfg.UserNamespace; m != nil {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		ids := []syscall.SysProcIDMap{{ContainerID: m.Inside, HostID: m.Outside, Size: m.Count}}
		attr.UidMappings, attr.GidMappings = ids, ids
		attr.GidMappingsEnableSetgroups = true
	}
	s.cmd.SysProcAttr = attr
	var pipes []io.Reader
	for _, target := range []*io.Writer{&s.cmd.Stdout, &s.cmd.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		*target = w
		pipes = append(pipes, r)
	}
	if err := s.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	// The child has its own copies of the pipes' write ends.
	s.cmd.Stdout.(*os.File).Close()
	s.cmd.Stderr.(*os.File).Close()
	writeJSON(share, vm.StartedFile("", spec.Name), map[string]int{"pid": s.cmd.Process.Pid})
	consolef("vminit: %s: started pid %d", spec.Name, s.cmd.Process.Pid)

	var logMu sync.Mutex
	for _, r := range pipes {
		s.output.Add(1)
		go func() {
			defer s.output.Done()
			copyLines(r, spec.Name, log, &logMu)
		}()
	}
	go func() {
		err := s.cmd.Wait()
		s.output.Wait()
		log.Close()
		s.exit = exitOf(s.cmd.ProcessState, err)
		if !s.stop.IsZero() {
			s.exit.AfterStopMS = time.Since(s.stop).Milliseconds()
		}
		writeJSON(share, vm.ExitFile("", spec.Name), s.exit)
		consolef("vminit: %s: exited: %+v", spec.Name, s.exit)
		close(s.done)
	}()
	return s, nil
}

// delegateCgroup creates the service's cgroup, a child of the root with the
// memory and pids controllers available, as a container runtime delegates a
// subtree to a container, and opens it.
func delegateCgroup(cgroups *os.Root, name string) (*os.File, error) {
	if err := cgroups.WriteFile("cgroup.subtree_control", []byte("+memory +pids"), 0); err != nil {
		return nil, fmt.Errorf("enabling memory and pids in the root cgroup: %w", err)
	}
	if err := cgroups.Mkdir(name, 0o755); err != nil {
		return nil, err
	}
	return cgroups.Open(name)
}

// copyLines copies r's non-blank lines to log and to the console, prefixed
// with the service's name.
func copyLines(r io.Reader, name string, log io.Writer, mu *sync.Mutex) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		mu.Lock()
		fmt.Fprintf(log, "%s\n", sc.Bytes())
		mu.Unlock()
		consolef("%s| %s", name, sc.Bytes())
	}
}

func exitOf(state *os.ProcessState, err error) vm.Exit {
	if state == nil {
		return vm.Exit{Code: -1, Error: fmt.Sprint(err)}
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return vm.Exit{Code: -1, Signal: ws.Signal().String()}
	}
	return vm.Exit{Code: state.ExitCode()}
}

// writeJSON writes v to name in the shared directory, whole: through a
// temporary file renamed into place, so the host never reads half of it.
func writeJSON(share *os.Root, name string, v any) {
	data, _ := json.Marshal(v)
	tmp := name + ".tmp"
	if err := share.WriteFile(tmp, data, 0o644); err != nil {
		consolef("vminit: writing %s: %v", name, err)
		return
	}
	if err := share.Rename(tmp, name); err != nil {
		consolef("vminit: writing %s: %v", name, err)
	}
}

// enterContainer is the container stage, run as the first process of the
// service's new pid namespace: it mounts that namespace's /proc and becomes
// the entrypoint.
func enterContainer(encoded string, cgroupReadOnly bool) error {
	var spec vm.Service
	if err := json.Unmarshal([]byte(encoded), &spec); err != nil {
		return err
	}
	if len(spec.Argv) == 0 {
		return errors.New("no entrypoint")
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	// Mounted in the new cgroup namespace, the hierarchy's root is the
	// service's own cgroup: the container sees and may change only its
	// subtree.
	flags := uintptr(cgroupMountFlags)
	if cgroupReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags, ""); err != nil {
		return fmt.Errorf("mounting /sys/fs/cgroup: %w", err)
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return err
	}
	path := spec.Argv[0]
	if !strings.Contains(path, "/") {
		found, err := exec.LookPath(path)
		if err != nil {
			return err
		}
		path = found
	}
	return unix.Exec(path, spec.Argv, os.Environ())
}
