// Giving memory the process no longer uses back to the system.
#pragma once

namespace pc::base {

// Returns the allocator's free pages to the kernel: tcmalloc's when the process is linked with
// it (ADR 0007), else glibc's (malloc_trim). For after a large build-up and tear-down, such as
// loading a policy and its databases; can take milliseconds, never on a worker thread.
void release_free_memory();

}  // namespace pc::base
