#include "base/memory.h"

#include <malloc.h>

// Defined by tcmalloc when the executable links it; null otherwise.
extern "C" void MallocExtension_ReleaseFreeMemory() __attribute__((weak));

namespace pc::base {

void release_free_memory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    MallocExtension_ReleaseFreeMemory();
    return;
  }
  malloc_trim(0);
}

}  // namespace pc::base
