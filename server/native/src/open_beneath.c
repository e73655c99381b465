/*
 * open_beneath.c - open a file of a netboot image without ever leaving the image root.
 *
 * Why this exists: an image unpacked from a registry (or written by anyone with access to the
 * image folder) may hold symlinks, and may swap a directory for a symlink while we resolve a
 * request. A realpath() check followed by open() is a classic time-of-check/time-of-use race.
 * openat2(2) with RESOLVE_BENEATH makes the kernel refuse, during the one lookup that opens the
 * file, any component (symlinks and ".." included) that would leave the starting directory,
 * and RESOLVE_NO_MAGICLINKS refuses /proc-style magic links. There is no window to race.
 *
 * JS API (plain Node-API, NAPI_VERSION 8):
 *   openBeneath(rootPath: string, relativePath: string) -> fd: number
 *     Opens rootPath (the configured, trusted image root; symlinks in it are followed) as a
 *     directory, then relativePath beneath it, read-only, O_NONBLOCK (a FIFO planted in an image
 *     must not block the event loop), O_NOCTTY and O_CLOEXEC. The caller owns the returned fd
 *     and closes it. Throws an errno Error in Node's shape: EXDEV for a path that would
 *     escape (absolute symlinks included), ELOOP for a magic link or too many links, ENOENT,
 *     ENOTDIR, and ENOSYS/EPERM when the kernel (older than 5.6) or a seccomp filter does
 *     not offer openat2: the caller then uses its own component walk.
 *
 * The call is synchronous: two path lookups on a local file system, the same cost as the
 * fs.statSync the image store already makes per lookup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "napi_common.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* Paths beyond this are refused (PATH_MAX is 4096 on Linux). */
#define MAX_PATH_BYTES 4096

static bool get_path_arg(napi_env env, napi_value value, char *buffer, size_t size) {
  napi_valuetype type;
  size_t length = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "path must be a string");
    return false;
  }
  if (napi_get_value_string_utf8(env, value, buffer, size, &length) != napi_ok) return false;
  if (length >= size - 1) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "path too long");
    return false;
  }
  /* An embedded NUL would silently shorten the path the kernel sees. */
  if (strlen(buffer) != length) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "path contains a NUL byte");
    return false;
  }
  return true;
}

static napi_value open_beneath(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "openBeneath(rootPath, relativePath)");
    return NULL;
  }
  char *root = malloc(MAX_PATH_BYTES);
  char *relative = malloc(MAX_PATH_BYTES);
  napi_value result = NULL;
  if (root == NULL || relative == NULL) {
    result = throw_errno(env, ENOMEM, "openBeneath");
    goto done;
  }
  if (!get_path_arg(env, argv[0], root, MAX_PATH_BYTES) || !get_path_arg(env, argv[1], relative, MAX_PATH_BYTES))
    goto done;

  int dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    result = throw_errno(env, errno, "open");
    goto done;
  }
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  /* An empty relative path names the root itself (the image's disk/ folder). */
  const char *target = relative[0] == '\0' ? "." : relative;
  long fd;
  do {
    fd = syscall(SYS_openat2, dirfd, target, &how, sizeof how);
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  int saved = errno;
  close(dirfd);
  if (fd < 0) {
    result = throw_errno(env, saved, "openat2");
    goto done;
  }
  if (napi_create_int32(env, (int32_t)fd, &result) != napi_ok) {
    close((int)fd);
    result = NULL;
  }
done:
  free(root);
  free(relative);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  NAPI_CALL(env, napi_create_function(env, "openBeneath", NAPI_AUTO_LENGTH, open_beneath, NULL, &fn));
  NAPI_CALL(env, napi_set_named_property(env, exports, "openBeneath", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
