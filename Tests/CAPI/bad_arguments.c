/*
 * Bad arguments through the C API, run as every rank of a job (chorus run -n 2): each must
 * return the documented code with a message, and nothing may crash. Prints one line per
 * failed expectation and exits 1 if there was any.
 */
#include <chorus.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

static void expect(chorusResult_t got, chorusResult_t want, const char* what, const char* needle) {
    const char* message = chorusGetLastError();
    if (got != want) {
        printf("FAIL %s: got %d (%s), want %d; last error: %s\n", what, got, chorusGetErrorString(got), want, message);
        failures++;
    } else if (want != chorusSuccess && (message == NULL || strstr(message, needle) == NULL)) {
        printf("FAIL %s: the message '%s' does not mention '%s'\n", what, message ? message : "(null)", needle);
        failures++;
    }
}

int main(void) {
    float a[64] = {0}, b[64 * 4] = {0};
    chorusComm_t comm = NULL;

    /* Before any communicator exists. */
    expect(chorusCommInitFromEnv(NULL), chorusInvalidArgument, "init with comm NULL", "NULL");
    expect(chorusGetVersion(NULL), chorusInvalidArgument, "version NULL", "NULL");
    expect(chorusGetUniqueId(NULL), chorusInvalidArgument, "unique id NULL", "NULL");
    chorusUniqueId garbage;
    memset(&garbage, 'x', sizeof garbage);
    chorusComm_t never = NULL;
    expect(chorusCommInitRank(&never, 2, &garbage, 0, 1.0), chorusInvalidArgument, "init with a garbage id", "chorusGetUniqueId");
    expect(chorusCommInitRank(&never, 0, NULL, 0, 1.0), chorusInvalidArgument, "init with a NULL id", "NULL");
    expect(chorusAllReduce(a, a, 1, chorusFloat32, chorusSum, NULL), chorusInvalidArgument, "all-reduce on NULL comm", "NULL");
    expect(chorusAllReduce(a, a, 1, chorusFloat32, chorusSum, (chorusComm_t)(uintptr_t)0x12345), chorusInvalidArgument,
           "all-reduce on a made-up handle", "not a live communicator");
    expect(chorusGroupEnd(), chorusInvalidArgument, "group end without start", "groupStart");

    if (chorusCommInitFromEnv(&comm) != chorusSuccess) {
        printf("FAIL init from the environment: %s\n", chorusGetLastError());
        return 1;
    }
    int rank = -1, size = 0;
    chorusCommUserRank(comm, &rank);
    chorusCommCount(comm, &size);

    /* Arguments that are wrong the same way on every rank: refused before anything is sent. */
    expect(chorusAllReduce(NULL, a, 64, chorusFloat32, chorusSum, comm), chorusInvalidArgument, "NULL send buffer", "send");
    expect(chorusAllReduce(a, NULL, 64, chorusFloat32, chorusSum, comm), chorusInvalidArgument, "NULL receive buffer", "receive");
    expect(chorusAllReduce(a, a, (size_t)-1, chorusFloat32, chorusSum, comm), chorusInvalidArgument, "count -1 as size_t", "count");
    expect(chorusAllReduce(a, a, 64, (chorusDataType_t)99, chorusSum, comm), chorusInvalidArgument, "unknown type", "datatype 99");
    expect(chorusAllReduce(a, a, 64, (chorusDataType_t)-3, chorusSum, comm), chorusInvalidArgument, "negative type", "datatype -3");
    expect(chorusAllReduce(a, a, 64, chorusFloat32, (chorusRedOp_t)7, comm), chorusInvalidArgument, "unknown op", "op 7");
    expect(chorusBroadcast(a, a, 64, chorusFloat32, size + 3, comm), chorusInvalidArgument, "root out of range", "root");
    expect(chorusSend(a, 64, chorusFloat32, -1, comm), chorusInvalidArgument, "peer -1", "peer");
    expect(chorusRecv(NULL, 64, chorusFloat32, 0, comm), chorusInvalidArgument, "recv NULL", "receive");
    expect(chorusCommSplit(comm, -7, 0, NULL), chorusInvalidArgument, "split newcomm NULL", "NULL");
    expect(chorusCommCount(comm, NULL), chorusInvalidArgument, "count NULL", "NULL");
    expect(chorusCommGetAsyncError(comm, NULL), chorusInvalidArgument, "async error NULL", "NULL");

    /* The communicator still works after refused calls. */
    for (int i = 0; i < 64; i++) a[i] = (float)(rank + 1);
    expect(chorusAllReduce(a, a, 64, chorusFloat32, chorusSum, comm), chorusSuccess, "all-reduce after refusals", "");
    if (a[0] != (float)(size * (size + 1) / 2)) { printf("FAIL all-reduce value %f\n", a[0]); failures++; }
    expect(chorusAllGather(a, b, 64, chorusFloat32, comm), chorusSuccess, "all-gather", "");
    chorusComm_t half = NULL;
    expect(chorusCommSplit(comm, rank % 2, rank, &half), chorusSuccess, "split", "");
    if (half == NULL) { printf("FAIL split gave NULL\n"); failures++; }
    chorusComm_t none = (chorusComm_t)(uintptr_t)1;
    expect(chorusCommSplit(comm, CHORUS_SPLIT_NOCOLOR, 0, &none), chorusSuccess, "split with no color", "");
    if (none != NULL) { printf("FAIL split with no color did not give NULL\n"); failures++; }
    if (half) expect(chorusCommDestroy(half), chorusSuccess, "destroy the split", "");

    /* Shared buffers: refusals, then an all-gather large enough to be read in place (each
     * rank's 512 KiB block is over the 128 KiB threshold), checked. */
    expect(chorusMemAlloc(NULL, 4096), chorusInvalidArgument, "mem alloc with ptr NULL", "NULL");
    void* shared = NULL;
    expect(chorusMemAlloc(&shared, 0), chorusInvalidArgument, "mem alloc of 0 bytes", "size");
    expect(chorusMemAlloc(&shared, (size_t)-1), chorusInvalidArgument, "mem alloc of -1 as size_t", "size");
    expect(chorusMemFree(NULL), chorusInvalidArgument, "mem free of NULL", "NULL");
    expect(chorusMemFree(a), chorusInvalidArgument, "mem free of a stack array", "not a buffer chorusMemAlloc returned");
    const size_t block = 128 * 1024; /* floats: 512 KiB */
    float *in = NULL, *out = NULL;
    expect(chorusMemAlloc((void**)&in, block * sizeof(float)), chorusSuccess, "mem alloc input", "");
    expect(chorusMemAlloc((void**)&out, block * sizeof(float) * size), chorusSuccess, "mem alloc output", "");
    if (in && out) {
        for (size_t i = 0; i < block; i++) in[i] = (float)(rank * 1000 + (int)(i % 997));
        expect(chorusAllGather(in, out, block, chorusFloat32, comm), chorusSuccess, "all-gather from shared buffers", "");
        for (int r = 0; r < size; r++) {
            for (size_t i = 0; i < block; i += 4099) {
                if (out[r * block + i] != (float)(r * 1000 + (int)(i % 997))) {
                    printf("FAIL shared all-gather: block %d element %zu is %f\n", r, i, out[r * block + i]);
                    failures++;
                    break;
                }
            }
        }
        expect(chorusBarrier(comm), chorusSuccess, "everyone done reading before the buffers are freed", "");
        expect(chorusMemFree(in), chorusSuccess, "mem free input", "");
        expect(chorusMemFree(out), chorusSuccess, "mem free output", "");
        expect(chorusMemFree(in), chorusInvalidArgument, "mem free twice", "freed already");
    }

    /* A second communicator made the NCCL way (rank 0's unique id, carried by the first), then
     * aborted: later calls on it fail with chorusAborted; the first is untouched. */
    chorusUniqueId id;
    memset(&id, 0, sizeof id);
    if (rank == 0) expect(chorusGetUniqueId(&id), chorusSuccess, "unique id", "");
    expect(chorusBroadcast(&id, &id, sizeof id, chorusUint8, 0, comm), chorusSuccess, "broadcast the unique id", "");
    chorusComm_t second = NULL;
    expect(chorusCommInitRank(&second, size, &id, rank, 60.0), chorusSuccess, "init by rank", "");
    if (second) {
        expect(chorusAllReduce(a, a, 64, chorusFloat32, chorusSum, second), chorusSuccess, "all-reduce on the second", "");
        expect(chorusBarrier(comm), chorusSuccess, "everyone done with the second before any abort", "");
        expect(chorusCommAbort(second), chorusSuccess, "abort", "");
        expect(chorusAllReduce(a, a, 64, chorusFloat32, chorusSum, second), chorusAborted, "all-reduce after abort", "abort");
        chorusResult_t after = chorusSuccess;
        expect(chorusCommGetAsyncError(second, &after), chorusSuccess, "async error after abort", "");
        if (after != chorusAborted) { printf("FAIL async error after abort is %d\n", after); failures++; }
        expect(chorusCommDestroy(second), chorusSuccess, "destroy the aborted communicator", "");
    }
    expect(chorusBarrier(comm), chorusSuccess, "the first communicator after the second was aborted", "");

    /* Calls that disagree across ranks: a mismatch on every rank, not corruption or a hang. */
    expect(chorusAllReduce(a, a, rank == 0 ? 64 : 32, chorusFloat32, chorusSum, comm), chorusMismatch, "mismatched counts", "disagree");
    chorusResult_t async = chorusSuccess;
    expect(chorusCommGetAsyncError(comm, &async), chorusSuccess, "async error query", "");
    if (async == chorusSuccess) { printf("FAIL the mismatch did not poison the communicator\n"); failures++; }

    /* Use after destroy is reported, never undefined. */
    expect(chorusCommDestroy(comm), chorusSuccess, "destroy", "");
    expect(chorusAllReduce(a, a, 64, chorusFloat32, chorusSum, comm), chorusInvalidArgument, "use after destroy", "not a live communicator");
    expect(chorusCommDestroy(comm), chorusInvalidArgument, "destroy twice", "not a live communicator");
    expect(chorusCommAbort(comm), chorusInvalidArgument, "abort after destroy", "not a live communicator");

    /* Every int has an error string. */
    int codes[] = {0, 1, 9, 10, -1, 12345, -2147483647 - 1};
    for (unsigned i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char* s = chorusGetErrorString(codes[i]);
        if (s == NULL || s[0] == '\0') { printf("FAIL no error string for %d\n", codes[i]); failures++; }
    }
    if (strstr(chorusGetErrorString(chorusMismatch), "chorusMismatch") == NULL) { printf("FAIL mismatch string\n"); failures++; }

    printf("rank %d: %s\n", rank, failures == 0 ? "all bad arguments refused" : "FAILURES");
    return failures == 0 ? 0 : 1;
}
