/* Owner, group and mode of a vhost-user socket the relay just created, set without following a
 * symlink. The socket lives in the relay's own directory, which the pool's group (QEMU's, and so
 * the tenant's pod that has the directory mounted) may write: between DPDK's bind() and the
 * chown(), whoever writes there could put a symlink to a host file (/etc/shadow) in the socket's
 * place, and chown()/chmod() by path would hand that file to the pool's owner and group. So the
 * path is opened with O_PATH|O_NOFOLLOW and only a socket is changed, through the descriptor. No
 * DPDK here: the engine and test/unit/native.sockown.test.ts build the same file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockown.h"

static const char *kind_of(mode_t m)
{
	return S_ISLNK(m) ? "symlink" : S_ISREG(m) ? "regular file" : S_ISDIR(m) ? "directory" :
	       S_ISFIFO(m) ? "fifo" : S_ISCHR(m) || S_ISBLK(m) ? "device" : "file";
}

int vio_socket_own(const char *path, long long owner, long long group, long long perm, char *why,
		   size_t why_len)
{
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int err;

	if (fd < 0) {
		err = errno;
		snprintf(why, why_len, "open(%s): %s", path, strerror(err));
		errno = err;
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		err = errno;
		snprintf(why, why_len, "fstat(%s): %s", path, strerror(err));
		goto fail;
	}
	if (!S_ISSOCK(st.st_mode)) {
		err = EPERM;
		snprintf(why, why_len,
			 "%s is a %s, not the socket the relay created: someone who may write its "
			 "directory replaced it; left alone (nothing chowned or chmodded)",
			 path, kind_of(st.st_mode));
		goto fail;
	}
	if ((owner >= 0 || group >= 0) &&
	    fchownat(fd, "", owner >= 0 ? (uid_t)owner : (uid_t)-1,
		     group >= 0 ? (gid_t)group : (gid_t)-1, AT_EMPTY_PATH) != 0) {
		err = errno;
		snprintf(why, why_len, "chown(%s, %lld, %lld): %s", path, owner, group, strerror(err));
		goto fail;
	}
	if (perm >= 0) {
		/* no fchmod() on an O_PATH descriptor: chmod its /proc link, which is the inode
		 * itself, never a path that could be swapped */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (chmod(proc, (mode_t)perm) != 0) {
			err = errno;
			snprintf(why, why_len, "chmod(%s, 0%llo): %s", path, perm, strerror(err));
			goto fail;
		}
	}
	close(fd);
	return 0;
fail:
	close(fd);
	errno = err;
	return -1;
}
