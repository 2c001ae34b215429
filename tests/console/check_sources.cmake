# cmake -DCONSOLE_DIR=<console/src> -P check_sources.cmake
#
# The console's sources keep the promises of docs/console.md, "Security":
# no HTML parsed from strings (innerHTML and friends), no eval, no inline
# script or style (the CSP has no 'unsafe-inline'), nothing fetched from
# another origin (no CDN). Fails naming the file and the construct.
if(NOT CONSOLE_DIR)
  message(FATAL_ERROR "check_sources.cmake: set CONSOLE_DIR")
endif()
file(GLOB_RECURSE files "${CONSOLE_DIR}/*")
set(bad "")
foreach(f IN LISTS files)
  file(READ "${f}" text)
  set(patterns
    "innerHTML" "outerHTML" "insertAdjacentHTML" "document\\.write"
    "createContextualFragment" "DOMParser" "eval\\(" "new Function"
    "setTimeout\\(['\"`]" "setInterval\\(['\"`]" "javascript:"
    "setAttribute\\(['\"]style" "setAttribute\\(['\"]on")
  if(f MATCHES "\\.html$")
    # Every <script> has a src; no <style> element, no style= or on...=
    # attribute.
    list(APPEND patterns "<script>" "<script [^>]*>[^<]" "<style" " style=" " on[a-z]+=")
  endif()
  foreach(p IN LISTS patterns)
    if(text MATCHES "${p}")
      string(APPEND bad "  ${f}: ${p}\n")
    endif()
  endforeach()
  # No URL of another origin; the SVG namespace is a name, not a fetch.
  string(REPLACE "http://www.w3.org/2000/svg" "" rest "${text}")
  if(rest MATCHES "(https?:)?//[a-zA-Z0-9.-]+\\.[a-z]+/")
    string(APPEND bad "  ${f}: a URL of another origin (${CMAKE_MATCH_0})\n")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "the console's sources break docs/console.md, \"Security\":\n${bad}")
endif()
list(LENGTH files n)
message(STATUS "console sources: ${n} files checked")
