#ifndef CCHORUS_FABRIC_H
#define CCHORUS_FABRIC_H
// libfabric for the OFI transport, loaded at run time.
//
// The headers are needed to build (libfabric-dev); the library is not linked. The handful of
// exported libfabric functions are reached through chorus_fi_* below, which resolve them with
// dlopen/dlsym on first use; everything else in libfabric's API is a static inline function that
// calls through the provider's operation tables and needs no symbol. So one binary runs on hosts
// with and without libfabric: there, chorus_fabric_load() says why it cannot.
//
// Without the headers this module is empty (and the package's RDMA trait should be disabled).
#if __has_include(<rdma/fabric.h>) && __has_include(<rdma/fi_tagged.h>)
#define CHORUS_HAVE_FABRIC_HEADERS 1
#include <stddef.h>
#include <stdint.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

// Loads libfabric (CHORUS_OFI_LIBRARY, else libfabric.so.1) once. Returns 0, or -1 with the
// reason in `why` (NUL-terminated, at most `capacity` bytes).
int chorus_fabric_load(char *why, size_t capacity);

// The loaded library's version, as FI_VERSION(major, minor); 0 before a successful load.
uint32_t chorus_fi_version(void);
// The API version Chorus asks for: what its headers know, capped by the library's.
uint32_t chorus_fi_requested_version(void);

int chorus_fi_getinfo(uint32_t version, const char *node, const char *service, uint64_t flags,
                      const struct fi_info *hints, struct fi_info **info);
void chorus_fi_freeinfo(struct fi_info *info);
int chorus_fi_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context);
const char *chorus_fi_strerror(int error);

// Hints for a reliable-datagram endpoint with tagged messages and remote CQ data, accepting the
// memory-registration modes and context modes Chorus handles. `provider` may be NULL (any).
// Free with chorus_fi_freeinfo.
struct fi_info *chorus_fi_rdm_hints(const char *provider);

// Macros Swift cannot import.
static inline uint64_t chorus_fi_addr_unspec(void) { return FI_ADDR_UNSPEC; }
#endif
#endif
