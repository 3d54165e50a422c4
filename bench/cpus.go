package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinning is where Caddy and this process (the load generator, and the upstream it starts) run.
type pinning struct {
	caddy []int  // Caddy's CPUs, run under taskset; nil when Caddy is not pinned
	list  string // caddy as taskset -c takes it
	self  []int  // this process's CPUs; nil when it is not pinned
	note  string // what was done, for the report
}

// pinCPUs pins this process to the CPUs that list leaves free, and returns the plan that
// startEnvironment follows to pin Caddy to list. Nothing is pinned when list is empty or taskset
// is missing; this process stays unpinned when list takes every CPU it may use.
func pinCPUs(list string) (pinning, error) {
	if list == "" {
		return pinning{note: "Caddy and the load generator unpinned (-caddy-cpus \"\")"}, nil
	}
	caddy, err := parseCPUList(list)
	if err != nil {
		return pinning{}, fmt.Errorf("-caddy-cpus %q: %w", list, err)
	}
	allowed, err := allowedCPUs()
	if err != nil {
		return pinning{}, err
	}
	for _, c := range caddy {
		if !slices.Contains(allowed, c) {
			return pinning{}, fmt.Errorf("-caddy-cpus %q: CPU %d is not one of this process's CPUs %s", list, c, formatCPUs(allowed))
		}
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return pinning{note: "taskset not found (util-linux): Caddy and the load generator unpinned, so they compete for the CPUs"}, nil
	}
	p := pinning{caddy: caddy, list: formatCPUs(caddy)}
	rest := slices.DeleteFunc(slices.Clone(allowed), func(c int) bool { return slices.Contains(caddy, c) })
	if len(rest) == 0 {
		p.note = fmt.Sprintf("Caddy pinned to CPU %s (GOMAXPROCS=%d); load generator unpinned: no CPU left for it", p.list, len(caddy))
		return p, nil
	}
	if err := pinSelf(rest); err != nil {
		return pinning{}, err
	}
	p.self = rest
	p.note = fmt.Sprintf("Caddy pinned to CPU %s (GOMAXPROCS=%d); load generator and upstream on CPU %s (GOMAXPROCS=%d)",
		p.list, len(caddy), formatCPUs(rest), len(rest))
	return p, nil
}

// command wraps Caddy's command line in taskset when Caddy is pinned.
func (p pinning) command(bin string, args ...string) (string, []string) {
	if p.caddy == nil {
		return bin, args
	}
	return "taskset", append([]string{"-c", p.list, bin}, args...)
}

// environ is what Caddy's environment adds: GOMAXPROCS matching its CPUs when pinned.
func (p pinning) environ() []string {
	if p.caddy == nil {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(len(p.caddy))}
}

// pinSelf sets the affinity of every thread of this process to cpus and GOMAXPROCS to match.
// sched_setaffinity acts on one thread; threads made later inherit the mask of the thread that
// makes them, so a second pass catches any that were started during the first.
func pinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pinning the load generator: %w", err)
			}
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("reading the CPU affinity: %w", err)
	}
	var cpus []int
	for c, n := 0, set.Count(); len(cpus) < n; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// parseCPUList reads a CPU list as taskset -c takes it: "0", "0,2", "0-1,3".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return nil, fmt.Errorf("not a CPU list (e.g. 0 or 0,2 or 0-1): %q", part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// formatCPUs writes cpus as a comma-separated list.
func formatCPUs(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
