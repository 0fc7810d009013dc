#ifndef VIO_SOCKOWN_H
#define VIO_SOCKOWN_H
#include <stddef.h>

/* Sets owner and group (each -1: unchanged) and mode (-1: unchanged) of the unix socket at path,
 * without following a symlink; anything but a socket there is left alone. 0, or -1 with errno
 * set and a message naming the path in why. */
int vio_socket_own(const char *path, long long owner, long long group, long long perm, char *why,
		   size_t why_len);

#endif
