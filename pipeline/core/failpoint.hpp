#pragma once
// Failure injection for the crash tests: EO_FAILPOINT="name@N=action" makes the N-th
// time this process passes `failpoint("name")` (N from 1) do the action: `kill` (SIGKILL
// itself, as a crash or `kill -9` would) or `sleep:S` (hold still S seconds). Unset in
// production, where a failpoint costs one getenv on first use.

namespace eo {

void failpoint(const char* name);

}  // namespace eo
