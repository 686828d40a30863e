/*
 * chorus.h: the C API of Chorus, collective communication for training clusters.
 *
 * Link with libChorusC.so (pkg-config: chorus). Every function returns a chorusResult_t;
 * on failure, chorusGetLastError() gives a sentence naming what was wrong, for the calling
 * thread, until that thread's next failing call. No function aborts the process on bad input.
 *
 * Conventions follow NCCL's:
 *   - counts are elements per rank's block: all-gather sends `sendcount` and receives
 *     nranks x sendcount; reduce-scatter sends nranks x recvcount and receives `recvcount`;
 *   - a call is in place when sendbuff == recvbuff (all-reduce, broadcast, reduce),
 *     sendbuff == recvbuff + rank x sendcount (all-gather), or
 *     recvbuff == sendbuff + rank x recvcount (reduce-scatter);
 *   - every rank must make the same calls in the same order; calls that disagree (collective,
 *     count, type, op, root) fail with chorusMismatch on every rank;
 *   - between chorusGroupStart() and chorusGroupEnd() the calls of the calling thread are
 *     recorded and run together by chorusGroupEnd() (sends and receives to several peers
 *     cannot deadlock on their order); buffers must stay valid until it returns.
 *   - after any failure of a collective the communicator is poisoned: destroy it and make a
 *     new one.
 *
 * Thread safety: one thread at a time per communicator (as NCCL); chorusCommAbort may be
 * called from any thread, also while a call is in flight, and returns in bounded time.
 */
#ifndef CHORUS_H
#define CHORUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_VERSION_MAJOR 0
#define CHORUS_VERSION_MINOR 1
#define CHORUS_VERSION_PATCH 0
/* The version as one integer: major * 10000 + minor * 100 + patch. */
#define CHORUS_VERSION_CODE (CHORUS_VERSION_MAJOR * 10000 + CHORUS_VERSION_MINOR * 100 + CHORUS_VERSION_PATCH)

/* Pass as `color` to chorusCommSplit to take no part in any new communicator. */
#define CHORUS_SPLIT_NOCOLOR (-1)

/* A communicator. Handles are never reused: one used after chorusCommDestroy is reported as
 * chorusInvalidArgument, not undefined behaviour. */
typedef struct chorusComm* chorusComm_t;

typedef enum {
    chorusSuccess = 0,
    /* A call's arguments are wrong (null pointers, counts out of range, unknown types or ops,
     * a root or peer that is not a rank, a destroyed communicator); nothing was sent. */
    chorusInvalidArgument = 1,
    /* Ranks made different calls (collective, count, type, op or root). */
    chorusMismatch = 2,
    /* A peer made no progress within the timeout; the message names it. */
    chorusTimeout = 3,
    /* The communicator was aborted, here or by a peer (named). */
    chorusAborted = 4,
    /* Moving bytes failed (a peer died, a connection broke). */
    chorusTransportError = 5,
    /* Joining the job failed: store unreachable, job token refused, ranks missing. */
    chorusRendezvousError = 6,
    /* An environment variable holds something Chorus cannot use (it is named). */
    chorusConfigurationError = 7,
    /* Something this build or machine cannot do (e.g. a transport that is not available). */
    chorusUnsupported = 8,
    /* A failure inside Chorus that is none of the above. */
    chorusInternalError = 9,
    chorusNumResults = 10
} chorusResult_t;

typedef enum {
    chorusFloat32 = 0, chorusFloat64 = 1, chorusFloat16 = 2, chorusBfloat16 = 3,
    chorusInt8 = 4, chorusUint8 = 5, chorusInt32 = 6, chorusUint32 = 7, chorusInt64 = 8, chorusUint64 = 9,
    chorusNumTypes = 10
} chorusDataType_t;

typedef enum {
    chorusSum = 0, chorusProd = 1, chorusMin = 2, chorusMax = 3, chorusAvg = 4,
    chorusNumOps = 5
} chorusRedOp_t;

/* Where and how a job meets: the rendezvous store's address and the job's token. Rank 0 makes
 * one with chorusGetUniqueId and sends it to the others (over MPI, a file, the launcher). */
#define CHORUS_UNIQUE_ID_BYTES 128
typedef struct { char internal[CHORUS_UNIQUE_ID_BYTES]; } chorusUniqueId;

/* Version of the library loaded (CHORUS_VERSION_CODE form). */
chorusResult_t chorusGetVersion(int* version);

/* A new rendezvous for a job whose rank 0 runs on this host: a free port on the address peers
 * will reach (CHORUS_SOCKET_IFNAME's, else CHORUS_RENDEZVOUS's host, else this host's first
 * non-loopback IPv4 address, else 127.0.0.1) and a random job token. */
chorusResult_t chorusGetUniqueId(chorusUniqueId* uniqueId);

/* Joins the job as `rank` of `nranks`. Blocks until every rank has joined, or fails after
 * `timeoutSeconds` (<= 0: CHORUS_TIMEOUT, default 300 s) naming the ranks that never arrived. */
chorusResult_t chorusCommInitRank(chorusComm_t* comm, int nranks, const chorusUniqueId* uniqueId, int rank,
                                  double timeoutSeconds);

/* Joins the job a launcher describes: torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
 * Open MPI, MPICH/PMI, Slurm or `chorus run`; see the README's environment table. */
chorusResult_t chorusCommInitFromEnv(chorusComm_t* comm);

/* Ranks with the same color form a new communicator, ordered by key (then by old rank). With
 * CHORUS_SPLIT_NOCOLOR, *newcomm is set to NULL. Collective over `comm`. */
chorusResult_t chorusCommSplit(chorusComm_t comm, int color, int key, chorusComm_t* newcomm);

/* Releases the communicator (waits for nothing in flight: call it when no call is running). */
chorusResult_t chorusCommDestroy(chorusComm_t comm);

/* Aborts: calls in flight on any rank of the job return chorusAborted in bounded time; the
 * communicator must then be destroyed. Safe from any thread. */
chorusResult_t chorusCommAbort(chorusComm_t comm);

/* The error that poisoned the communicator (chorusSuccess if none), without blocking. */
chorusResult_t chorusCommGetAsyncError(chorusComm_t comm, chorusResult_t* asyncError);

chorusResult_t chorusCommCount(chorusComm_t comm, int* count);
chorusResult_t chorusCommUserRank(chorusComm_t comm, int* rank);

chorusResult_t chorusAllReduce(const void* sendbuff, void* recvbuff, size_t count, chorusDataType_t datatype,
                               chorusRedOp_t op, chorusComm_t comm);
chorusResult_t chorusAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, chorusDataType_t datatype,
                               chorusComm_t comm);
chorusResult_t chorusReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, chorusDataType_t datatype,
                                   chorusRedOp_t op, chorusComm_t comm);
/* sendbuff is read on the root only. */
chorusResult_t chorusBroadcast(const void* sendbuff, void* recvbuff, size_t count, chorusDataType_t datatype, int root,
                               chorusComm_t comm);
/* recvbuff is written on the root only. */
chorusResult_t chorusReduce(const void* sendbuff, void* recvbuff, size_t count, chorusDataType_t datatype,
                            chorusRedOp_t op, int root, chorusComm_t comm);
chorusResult_t chorusSend(const void* sendbuff, size_t count, chorusDataType_t datatype, int peer, chorusComm_t comm);
chorusResult_t chorusRecv(void* recvbuff, size_t count, chorusDataType_t datatype, int peer, chorusComm_t comm);
chorusResult_t chorusBarrier(chorusComm_t comm);

/* Memory for buffers that the other ranks on this host read in place (the role of
 * ncclMemAlloc): over shared memory, a message of at least 128 KiB sent from it moves with one
 * copy instead of two. Page-aligned, zeroed, reserved up front (a full /dev/shm, or more than
 * the host's available memory, fails here with chorusTransportError). Usable with any
 * communicator; do not free it while a call using it runs. chorusMemFree of a pointer
 * chorusMemAlloc did not return is chorusInvalidArgument. */
chorusResult_t chorusMemAlloc(void** ptr, size_t size);
chorusResult_t chorusMemFree(void* ptr);

chorusResult_t chorusGroupStart(void);
chorusResult_t chorusGroupEnd(void);

/* A short name for a result code ("chorusMismatch: ranks made different calls"); any int is
 * accepted, unknown codes included. The string is static. */
const char* chorusGetErrorString(int code);

/* The message of the calling thread's last failure ("" if none): which rank, argument or peer,
 * and what was expected. Valid until this thread's next failing call. */
const char* chorusGetLastError(void);

#ifdef __cplusplus
}
#endif

#endif /* CHORUS_H */
