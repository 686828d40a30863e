// chorus.h must compile as C++17 with warnings as errors, and its names must be usable from C++.
#include <chorus.h>

#include <cstdio>

int main() {
    static_assert(sizeof(chorusUniqueId) == CHORUS_UNIQUE_ID_BYTES, "unique id size");
    chorusComm_t comm = nullptr;
    int code = chorusInvalidArgument;  // plain ints pass to chorusGetErrorString
    std::printf("%s %p\n", chorusGetErrorString(code), static_cast<void*>(comm));
    return 0;
}
