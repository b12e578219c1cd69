package hosts

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var backupName = regexp.MustCompile(`\.bak-\d{14}(-\d+)?$`)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listDir returns every path under dir, relative, slash-separated.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func TestWriteCreatesFilesAndDirectories(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string][]byte{
		"docker.io/hosts.toml":      []byte("server = \"https://registry-1.docker.io\"\n"),
		"localhost:5000/hosts.toml": []byte("b\n"),
		"_default/hosts.toml":       []byte("c\n"),
	}
	backups, err := Write(dir, files)
	if err != nil || backups != nil {
		t.Fatalf("Write: backups %q, err %v", backups, err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"_default/hosts.toml", "docker.io/hosts.toml", "localhost:5000/hosts.toml"}) {
		t.Errorf("files %q: a temporary file was left, or one is missing", got)
	}
	for name, want := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if got := readFile(t, path); got != string(want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", name, fi.Mode().Perm())
		}
	}
}

func TestWriteSameContentTouchesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(path, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	backups, err := Write(dir, map[string][]byte{"daemon.json": []byte("{}\n")})
	if err != nil || backups != nil {
		t.Fatalf("backups %q, err %v", backups, err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("an unchanged file was replaced")
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"daemon.json"}) {
		t.Errorf("files %q, want only daemon.json", got)
	}
}

func TestWriteBacksUpADifferentFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(path, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backups, err := Write(dir, map[string][]byte{"registries.conf": []byte("detour's\n")})
	if err != nil {
		t.Fatal(err)
	}
	if len(backups) != 1 || !strings.HasPrefix(backups[0], path) || !backupName.MatchString(backups[0]) {
		t.Fatalf("backups %q, want one %s.bak-YYYYMMDDHHMMSS", backups, path)
	}
	if got := readFile(t, backups[0]); got != "mine\n" {
		t.Errorf("backup holds %q, want the old content", got)
	}
	if got := readFile(t, path); got != "detour's\n" {
		t.Errorf("file holds %q, want the new content", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v: the replaced file's mode was not kept", fi.Mode().Perm())
	}

	// A second change, perhaps within the same second, keeps both backups.
	more, err := Write(dir, map[string][]byte{"registries.conf": []byte("third\n")})
	if err != nil || len(more) != 1 || more[0] == backups[0] || !backupName.MatchString(more[0]) {
		t.Fatalf("second write: backups %q (first %q), err %v", more, backups, err)
	}
	if got := readFile(t, more[0]); got != "detour's\n" {
		t.Errorf("second backup holds %q", got)
	}
	if got := readFile(t, backups[0]); got != "mine\n" {
		t.Errorf("first backup overwritten: %q", got)
	}
}

func TestWriteRefusesPathsOutsideDir(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"../escape", "/etc/passwd", "a/../../b", ""} {
		dir := t.TempDir()
		_, err := Write(dir, map[string][]byte{"ok/hosts.toml": []byte("x"), name: []byte("x")})
		if err == nil {
			t.Errorf("Write accepted %q", name)
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("%q: files written before the refusal: %q", name, got)
		}
	}
}

func TestWriteRenderedContainerdDir(t *testing.T) {
	t.Parallel()
	// The spegel way: the whole output as a map of path -> content in a
	// temp dir, read back.
	res := render(t, "custom", Containerd)
	dir := t.TempDir()
	if _, err := Write(dir, res.Files); err != nil {
		t.Fatal(err)
	}
	got := listDir(t, dir)
	if want := keys(res.Files); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	for name, want := range res.Files {
		if got := readFile(t, filepath.Join(dir, filepath.FromSlash(name))); got != string(want) {
			t.Errorf("%s differs", name)
		}
	}
}
