# Helpers shared by every folder: warnings on for our own targets only, and the
# eo:: alias that the rest of the build links against.
function(eo_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow)
endfunction()

function(eo_library name alias)
  add_library(${name} ${ARGN})
  add_library(eo::${alias} ALIAS ${name})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  eo_warnings(${name})
endfunction()
