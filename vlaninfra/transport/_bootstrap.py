"""The trusted bootstrap: checks the cached agent archive, then runs exactly the checked bytes.

The agent may run as root (``sudo``) from a file in the login user's cache directory. The
controller never trusts that file, nor anything the running agent says about itself: it
starts ``python3 -I -c BOOTSTRAP <archive path> <sha256>`` (a relative path is taken from
the working directory: the login user's home over SSH, also under sudo), where
``BOOTSTRAP`` is the fixed program below and the sha256 is the one of the archive the
controller built. The bootstrap

1. walks from ``/`` to the archive with ``O_NOFOLLOW`` (no component may be a symlink) and
   refuses any directory or the file when it is owned by someone other than root or the login
   user (``SUDO_UID`` under sudo, else the running user), or is group/world-writable (a
   root-owned sticky directory such as ``/tmp`` excepted);
2. reads the archive once through that descriptor and hashes those bytes;
3. marks the archive used (its mtime), removes the other archives of its directory that no
   start used for ``KEEP_DAYS`` (each run of another vlaninfra version leaves one, about
   3 MB), and
4. runs exactly those bytes from a close-on-exec memfd (or, without memfd, a fresh 0700
   directory of the running user under ``/run`` or ``/tmp``, never ``$TMPDIR``), never the
   path again.

Exit statuses: ``STALE`` (75) when the archive is missing or has other bytes (the controller
then uploads it and starts again), ``REFUSED`` (77) when a check fails, with one line on
stderr starting ``vlaninfra bootstrap:`` that names the path, what is wrong and what to do;
``TOO_OLD`` (78) for a Python before 3.10.
"""

from __future__ import annotations

__all__ = ["BOOTSTRAP", "KEEP_DAYS", "REFUSED", "STALE", "TOO_OLD", "bootstrap_argv"]

STALE = 75
REFUSED = 77
TOO_OLD = 78

BOOTSTRAP = r'''
import hashlib, os, stat, sys
def fail(code, msg):
    sys.stderr.write("vlaninfra bootstrap: " + msg + "\n"); sys.exit(code)
if sys.version_info < (3, 10):
    fail(78, "Python %s is too old, the agent needs 3.10 or newer" % sys.version.split()[0])
path, want = os.path.join(os.getcwd(), sys.argv[1]), sys.argv[2]
if "/../" in path or "/./" in path:
    fail(77, "not a normal path: %r" % path)
me = os.getuid()
login = int(os.environ.get("SUDO_UID", me)) if me == 0 else me
owners = {0, login}
def check(st, where, is_dir):
    if stat.S_ISLNK(st.st_mode):
        fail(77, "%s is a symlink; refusing to follow it. Remove it (vlaninfra recreates "
                 "%s)" % (where, "the directory" if is_dir else "the archive"))
    if is_dir != stat.S_ISDIR(st.st_mode) or not (is_dir or stat.S_ISREG(st.st_mode)):
        fail(77, "%s is not a %s; remove it" % (where, "directory" if is_dir else "file"))
    if st.st_uid not in owners:
        fail(77, "%s is owned by uid %d, not by root or the login user (uid %d); refusing "
                 "to run anything from there. Remove it or chown it to uid %d"
             % (where, st.st_uid, login, login))
    sticky = is_dir and st.st_uid == 0 and st.st_mode & stat.S_ISVTX
    if st.st_mode & 0o022 and not sticky:
        fail(77, "%s is writable by group or others (mode %04o); refusing to run anything "
                 "from there. Run `chmod go-w %s` (the cache directory should be 0700)"
             % (where, stat.S_IMODE(st.st_mode), where))
parts = [p for p in path.split("/") if p]
flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
fd = os.open("/", flags | os.O_DIRECTORY)
where = "/"
check(os.fstat(fd), where, True)
for i, name in enumerate(parts):
    last = i == len(parts) - 1
    where = where.rstrip("/") + "/" + name
    try:
        st = os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        sys.exit(75)
    check(st, where, not last)
    try:
        nfd = os.open(name, flags | (0 if last else os.O_DIRECTORY), dir_fd=fd)
    except FileNotFoundError:
        sys.exit(75)  # removed since (another run pruned it): the controller uploads it
    except PermissionError:
        fail(77, "uid %d cannot read %s (e.g. a root-squashed NFS home directory); use a "
                 "login user whose home directory uid %d can read" % (me, where, me))
    except OSError as exc:
        fail(77, "cannot open %s safely: %s; remove it" % (where, exc.strerror))
    if last:
        dfd = fd  # the archive's directory: other archives there are pruned below
    else:
        os.close(fd)
    fd = nfd
    nst = os.fstat(fd)
    check(nst, where, not last)
    if (nst.st_dev, nst.st_ino) != (st.st_dev, st.st_ino):
        fail(77, "%s changed while it was checked; run again" % where)
chunks = []
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    chunks.append(b)
data = b"".join(chunks)
if hashlib.sha256(data).hexdigest() != want:
    sys.exit(75)
try:
    os.utime(fd)  # "used now": what the pruning below goes by
except OSError:
    pass
os.close(fd)
import re, time
cutoff = time.time() - KEEP_DAYS * 86400
for old in os.listdir(dfd):
    if old == parts[-1] or not re.fullmatch(r"agent-[0-9a-f]{12}\.pyz|"
                                            r"\.agent-[0-9a-f]{12}\.pyz\.[0-9a-f]{8}\.tmp", old):
        continue
    try:
        st = os.lstat(old, dir_fd=dfd)
        if (stat.S_ISREG(st.st_mode) and st.st_uid in owners
                and max(st.st_mtime, st.st_atime) < cutoff):
            os.unlink(old, dir_fd=dfd)
    except OSError:
        pass
os.close(dfd)
try:
    mfd = os.memfd_create("vlaninfra-agent", os.MFD_CLOEXEC)
    run = "/proc/self/fd/%d" % mfd
except (AttributeError, OSError):
    import atexit, shutil, tempfile
    tmp = None
    for base in ("/run", "/tmp"):  # never $TMPDIR: only a root-owned, safe directory
        try:
            st = os.lstat(base)
            if (stat.S_ISDIR(st.st_mode) and st.st_uid == 0
                    and (not st.st_mode & 0o022 or st.st_mode & stat.S_ISVTX)):
                tmp = tempfile.mkdtemp(prefix="vlaninfra-agent-", dir=base)
                break
        except OSError:
            pass
    if tmp is None:
        fail(77, "no memfd and no safe directory (/run or /tmp, root-owned, not writable "
                 "by others unless sticky) to run the agent from")
    atexit.register(shutil.rmtree, tmp, True)
    run = os.path.join(tmp, "agent.pyz")
    mfd = os.open(run, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o400)
with open(mfd, "wb", closefd=False) as f:
    f.write(data)
del data, chunks
sys.argv = [run]
import runpy
runpy.run_path(run, run_name="__main__")
'''
KEEP_DAYS = 3
"""Archives beside the one started that no start used for this long are removed."""
BOOTSTRAP = BOOTSTRAP.replace("KEEP_DAYS", str(KEEP_DAYS))
"""The fixed bootstrap program (``python3 -I -c BOOTSTRAP <path> <sha256>``)."""


def bootstrap_argv(python: str, archive: str, sha256: str) -> list[str]:
    """The argv that starts the agent through the bootstrap (no shell involved).

    Example: ``bootstrap_argv("python3", "/root/.cache/vlaninfra/agent-3f2a.pyz", "3f2a…")``
    → ``["python3", "-I", "-c", BOOTSTRAP, "/root/.cache/…", "3f2a…"]``
    """
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return [python, "-I", "-c", BOOTSTRAP, archive, sha256]
