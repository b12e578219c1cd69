package hosts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// BackupSuffix is the layout of the timestamp Write appends to a file it
// replaces: NAME.bak-YYYYMMDDHHMMSS.
const BackupSuffix = ".bak-20060102150405"

// File and directory modes of new files: runtimes read them as root, users
// read them to see what detour did.
const (
	fileMode = 0o644
	dirMode  = 0o755
)

// Write installs files (relative slash-separated path → content, as Render
// returns them) under dir, creating directories as needed. Each file is
// written to a temporary file beside it and renamed into place, so a runtime
// reading it sees the old content or the new, never a part. A file that
// already holds the same content is left untouched; one that holds different
// content is first kept as NAME.bak-YYYYMMDDHHMMSS (local time). Write returns
// the paths of those backups, sorted. A path that would leave dir is refused
// before anything is written.
func Write(dir string, files map[string][]byte) ([]string, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return nil, fmt.Errorf("writing %q under %s: not a relative path inside the directory", name, dir)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	stamp := time.Now().Format(BackupSuffix)
	var backups []string
	for _, name := range names {
		dst := filepath.Join(dir, filepath.FromSlash(name))
		backup, err := writeFile(dst, files[name], stamp)
		if err != nil {
			return backups, fmt.Errorf("writing %s: %w", dst, err)
		}
		if backup != "" {
			backups = append(backups, backup)
		}
	}
	return backups, nil
}

// writeFile replaces dst with content atomically; an existing different dst
// is kept as dst+stamp first. It returns the backup's path, or "".
func writeFile(dst string, content []byte, stamp string) (string, error) {
	mode := fs.FileMode(fileMode)
	old, err := os.ReadFile(dst)
	switch {
	case err == nil && bytes.Equal(old, content):
		return "", nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	backup := ""
	if err == nil {
		if fi, err := os.Stat(dst); err == nil {
			mode = fi.Mode().Perm()
		}
		backup, err = keep(dst, stamp)
		if err != nil {
			return "", err
		}
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return backup, err
	}
	tmp, err := os.CreateTemp(parent, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return backup, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return backup, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return backup, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return backup, err
	}
	if err := tmp.Close(); err != nil {
		return backup, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return backup, err
	}
	syncDir(parent)
	return backup, nil
}

// keep saves the current dst as dst+stamp (dst+stamp+"-N" when that exists
// already, from an earlier run in the same second). A hard link costs
// nothing and leaves dst in place until the rename replaces it; where links
// are refused the content is copied.
func keep(dst, stamp string) (string, error) {
	backup := dst + stamp
	for n := 1; ; n++ {
		if _, err := os.Lstat(backup); errors.Is(err, fs.ErrNotExist) {
			break
		}
		backup = dst + stamp + "-" + strconv.Itoa(n)
	}
	if err := os.Link(dst, backup); err == nil {
		return backup, nil
	}
	in, err := os.Open(dst)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(backup, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return backup, out.Close()
}

// syncDir makes a rename in dir durable. Some file systems cannot sync a
// directory; the rename has happened either way, so errors are ignored.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
