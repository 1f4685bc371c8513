package main

import (
	"bufio"
	"bytes"
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
)

// supervisor starts the harness's child processes (pods, proxies, wrk), each
// in its own process group so nginx's workers go with their master, and kills
// every group it started when asked or on Close. It is safe for concurrent
// use; the zero value is not usable (newSupervisor).
type supervisor struct {
	dir     string // logs go here
	taskset string // taskset's path, "" when pinning is off or unavailable
	// watch, when set, is the pipe to the watchdog process that kills every
	// group still listed if the harness dies without cleaning up (kill -9):
	// PDEATHSIG reaches only direct children, and nginx's worker outlives a
	// killed master.
	watch io.WriteCloser

	mu       sync.Mutex
	children map[*child]struct{}
	closed   bool
}

func newSupervisor(dir, taskset string) *supervisor {
	return &supervisor{dir: dir, taskset: taskset, children: map[*child]struct{}{}}
}

// child is one started process.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's result, valid after done
}

// start runs argv as name, pinned to cpus (a taskset list such as "1" or
// "0-2"; "" for no pinning), with env added to the harness's environment and
// stdout and stderr going to DIR/name.log.
func (s *supervisor) start(name, cpus string, env []string, argv ...string) (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("compare: shutting down")
	}
	if cpus != "" && s.taskset != "" {
		argv = append([]string{s.taskset, "-c", cpus}, argv...)
	}
	logPath := filepath.Join(s.dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A group of its own, so one kill reaches every worker; and SIGKILL if
	// the harness dies before it could clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("compare: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	s.children[c] = struct{}{}
	s.tellWatchdog("+", c.pid())
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// pid is the process ID (taskset execs its command, so it is the program's).
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTail is the last lines of the child's log, for error messages.
func (c *child) logTail(lines int) string {
	data, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// stop kills the child's process group and waits for the child.
func (s *supervisor) stop(c *child) {
	if c == nil {
		return
	}
	s.mu.Lock()
	delete(s.children, c)
	s.mu.Unlock()
	killGroup(c)
	s.mu.Lock()
	s.tellWatchdog("-", c.pid())
	s.mu.Unlock()
}

// tellWatchdog adds (+) or removes (-) a process group from the watchdog's
// list. s.mu must be held.
func (s *supervisor) tellWatchdog(op string, pgid int) {
	if s.watch != nil {
		_, _ = io.WriteString(s.watch, op+strconv.Itoa(pgid)+"\n")
	}
}

func killGroup(c *child) {
	if !c.exited() {
		// Negative pid: the whole process group the child leads.
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	// Workers reparented before the group kill landed are in the group too;
	// a second kill catches any that were forking at that moment.
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

// Close kills every child still running; later starts fail.
func (s *supervisor) Close() {
	s.mu.Lock()
	s.closed = true
	kids := make([]*child, 0, len(s.children))
	for c := range s.children {
		kids = append(kids, c)
	}
	s.children = map[*child]struct{}{}
	s.mu.Unlock()
	for _, c := range kids {
		killGroup(c)
	}
	s.mu.Lock()
	if s.watch != nil {
		s.watch.Close() // the watchdog exits with nothing left to kill
		s.watch = nil
	}
	s.mu.Unlock()
}

// watchdogFlag, as the only argument, makes the program the watchdog.
const watchdogFlag = "-internal-watchdog"

// startWatchdog runs this program again as the watchdog (runWatchdog), in
// a process group of its own so a Ctrl-C meant for the harness leaves it
// alive until the harness has cleaned up.
func (s *supervisor) startWatchdog() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("compare: watchdog: %w", err)
	}
	cmd := exec.Command(self, watchdogFlag)
	w, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("compare: watchdog: %w", err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("compare: watchdog: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	s.mu.Lock()
	s.watch = w
	s.mu.Unlock()
	return nil
}

// removeOnDeath has the watchdog remove dir (the work directory) when the
// harness is gone.
func (s *supervisor) removeOnDeath(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watch != nil {
		_, _ = io.WriteString(s.watch, "r"+dir+"\n")
	}
}

// runWatchdog reads "+PGID" and "-PGID" lines (and "rDIR") from r until r
// ends, which happens when the harness closes the pipe or dies, then kills
// every process group still listed and removes the directories.
func runWatchdog(r io.Reader) {
	groups := map[int]bool{}
	var dirs []string
	defer func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 {
			continue
		}
		if line[0] == 'r' {
			if strings.Contains(line, "bench-compare-") {
				dirs = append(dirs, line[1:])
			}
			continue
		}
		pgid, err := strconv.Atoi(line[1:])
		if err != nil || pgid <= 1 {
			continue
		}
		groups[pgid] = line[0] == '+'
	}
	for pgid, live := range groups {
		if live {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
}

// procStat is the part of /proc/PID/stat the harness reads.
type procStat struct {
	ppid  int
	ticks uint64 // utime + stime, in clock ticks
}

// parseStat parses the content of /proc/PID/stat (proc(5)). The command name
// is in parentheses and may itself contain spaces and parentheses, so fields
// are counted from the last ')'.
func parseStat(data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("compare: /proc stat %q: no command name", data)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("compare: /proc stat %q: %d fields", data, len(f)+2)
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("compare: /proc stat: %w", err)
	}
	return procStat{ppid: ppid, ticks: ut + st}, nil
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(data)
}

// tree is root and all its descendants (nginx's master and worker), found by
// walking every process's parent in /proc.
func tree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	kids := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		kids[st.ppid] = append(kids[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, kids[out[i]]...)
	}
	return out
}

// cpuTicks sums utime+stime over root's process tree.
func cpuTicks(root int) map[int]uint64 {
	m := map[int]uint64{}
	for _, pid := range tree(root) {
		if st, err := readStat(pid); err == nil {
			m[pid] = st.ticks
		}
	}
	return m
}

// ticksSince is how many ticks the processes of now used since before; a
// process that appeared in between counts from zero.
func ticksSince(before, now map[int]uint64) uint64 {
	var d uint64
	for pid, t := range now {
		if b := before[pid]; t >= b {
			d += t - b
		}
	}
	return d
}

// memory is a process tree's resident memory.
type memory struct {
	rssKiB, pssKiB uint64
}

// parseRollup reads Rss and Pss from /proc/PID/smaps_rollup.
func parseRollup(data []byte) (memory, error) {
	var m memory
	var found int
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.rssKiB, found = v, found+1
		case "Pss:":
			m.pssKiB, found = v, found+1
		}
	}
	if found != 2 {
		return m, errors.New("compare: smaps_rollup without Rss and Pss")
	}
	return m, nil
}

// treeMemory sums Rss and Pss over root's process tree. Pss splits shared
// pages between the processes mapping them, so nginx's master and worker are
// not counted twice for the same pages.
func treeMemory(root int) (memory, error) {
	var sum memory
	for _, pid := range tree(root) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
		if err != nil {
			return sum, fmt.Errorf("compare: %w", err)
		}
		m, err := parseRollup(data)
		if err != nil {
			return sum, err
		}
		sum.rssKiB += m.rssKiB
		sum.pssKiB += m.pssKiB
	}
	return sum, nil
}

// clockTicks is sysconf(_SC_CLK_TCK), asked of getconf; Linux has used 100
// on every common architecture for decades, the fallback.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// raiseNoFile lifts the open-file soft limit to the hard limit, and tries a
// higher hard limit first when allowed (root with CAP_SYS_RESOURCE). Children
// inherit it: Go restores the original soft limit in children only when the
// program never set it itself. It returns the limit in force.
func raiseNoFile(want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Max < want {
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
			return want
		}
	}
	lim.Cur = lim.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// onlineCPUs lists the CPUs the harness may run on.
func onlineCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// parseCPUList parses a taskset-style list ("0", "0,2", "1-3").
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("compare: cpu list %q: bad cpu %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("compare: cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("compare: cpu list %q is empty", s)
	}
	return out, nil
}

// pinSelf pins every thread of the harness to cpus; threads started later
// inherit the mask of the thread that creates them.
func pinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("compare: pin thread %d to %v: %w", tid, cpus, err)
		}
	}
	return nil
}

// reniceSelf sets the nice value of every thread of the harness; children
// inherit it from the thread that starts them. Negative values need root
// (CAP_SYS_NICE).
func reniceSelf(n int) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil {
			return fmt.Errorf("compare: -nice %d: %w", n, err)
		}
	}
	return nil
}
