#include "CChorusFabric.h"
#ifdef CHORUS_HAVE_FABRIC_HEADERS
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    pthread_once_t once;
    int loaded;
    char why[512];
    uint32_t (*version)(void);
    int (*getinfo)(uint32_t, const char *, const char *, uint64_t, const struct fi_info *, struct fi_info **);
    void (*freeinfo)(struct fi_info *);
    struct fi_info *(*dupinfo)(const struct fi_info *);
    int (*fabric)(struct fi_fabric_attr *, struct fid_fabric **, void *);
    const char *(*strerror)(int);
} lib = { .once = PTHREAD_ONCE_INIT };

static void load_once(void) {
    const char *name = getenv("CHORUS_OFI_LIBRARY");
    if (name == NULL || name[0] == 0) name = "libfabric.so.1";
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *e = dlerror();
        snprintf(lib.why, sizeof lib.why, "cannot load %s (%s); install libfabric (Debian: libfabric1) or set CHORUS_OFI_LIBRARY",
                 name, e ? e : "unknown error");
        return;
    }
    const char *missing = NULL;
#define RESOLVE(field, symbol) \
    if ((*(void **)&lib.field = dlsym(handle, symbol)) == NULL && missing == NULL) missing = symbol;
    RESOLVE(version, "fi_version")
    RESOLVE(getinfo, "fi_getinfo")
    RESOLVE(freeinfo, "fi_freeinfo")
    RESOLVE(dupinfo, "fi_dupinfo")
    RESOLVE(fabric, "fi_fabric")
    RESOLVE(strerror, "fi_strerror")
#undef RESOLVE
    if (missing != NULL) {
        snprintf(lib.why, sizeof lib.why, "%s has no symbol %s: not a libfabric library", name, missing);
        return;
    }
    uint32_t v = lib.version();
    if (FI_MAJOR(v) != 1 || FI_MINOR(v) < 10) {
        snprintf(lib.why, sizeof lib.why, "%s is libfabric %u.%u; Chorus needs 1.10 or newer in the 1.x series",
                 name, FI_MAJOR(v), FI_MINOR(v));
        return;
    }
    lib.loaded = 1;
}

int chorus_fabric_load(char *why, size_t capacity) {
    pthread_once(&lib.once, load_once);
    if (lib.loaded) return 0;
    if (why != NULL && capacity > 0) snprintf(why, capacity, "%s", lib.why);
    return -1;
}

uint32_t chorus_fi_version(void) { return lib.loaded ? lib.version() : 0; }

uint32_t chorus_fi_requested_version(void) {
    uint32_t compiled = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION);
    uint32_t found = chorus_fi_version();
    return found != 0 && found < compiled ? found : compiled;
}

int chorus_fi_getinfo(uint32_t version, const char *node, const char *service, uint64_t flags,
                      const struct fi_info *hints, struct fi_info **info) {
    if (!lib.loaded) return -FI_ENOSYS;
    return lib.getinfo(version, node, service, flags, hints, info);
}

void chorus_fi_freeinfo(struct fi_info *info) {
    if (lib.loaded && info != NULL) lib.freeinfo(info);
}

int chorus_fi_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context) {
    if (!lib.loaded) return -FI_ENOSYS;
    return lib.fabric(attr, fabric, context);
}

const char *chorus_fi_strerror(int error) {
    if (!lib.loaded) return "libfabric is not loaded";
    return lib.strerror(error < 0 ? -error : error);
}

struct fi_info *chorus_fi_rdm_hints(const char *provider) {
    if (!lib.loaded) return NULL;
    struct fi_info *hints = lib.dupinfo(NULL);
    if (hints == NULL) return NULL;
    hints->caps = FI_TAGGED | FI_SEND | FI_RECV;
    hints->mode = FI_CONTEXT | FI_CONTEXT2;
    hints->ep_attr->type = FI_EP_RDM;
    hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    hints->domain_attr->threading = FI_THREAD_DOMAIN;
    hints->domain_attr->control_progress = FI_PROGRESS_UNSPEC;
    hints->domain_attr->data_progress = FI_PROGRESS_UNSPEC;
    hints->domain_attr->resource_mgmt = FI_RM_ENABLED;
    hints->tx_attr->msg_order = FI_ORDER_NONE;
    hints->rx_attr->msg_order = FI_ORDER_NONE;
    if (provider != NULL && provider[0] != 0) {
        hints->fabric_attr->prov_name = strdup(provider);
    }
    return hints;
}
#endif
