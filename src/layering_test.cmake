# Layers point down only (docs/architecture.md, STYLE.md): nothing below
# workflow/ includes config/, workflow/ or app/; config/ includes neither
# workflow/ nor app/; workflow/ includes neither lambda/ nor app/; lambda/
# does not include app/; aws/ (under every AWS
# adapter) includes only common/ and itself. Every folder of src/
# other than config/, workflow/, lambda/ and app/ is a lower layer, so a new port
# folder is checked without being listed here.
#
#   cmake -DSRC=<repo>/src -P layering_test.cmake   # exit 1 on a violation
if(NOT SRC OR NOT IS_DIRECTORY "${SRC}")
  message(FATAL_ERROR "layering_test: SRC=\"${SRC}\" is not a folder")
endif()

file(GLOB entries RELATIVE "${SRC}" "${SRC}/*")
set(violations "")
set(scanned 0)
foreach(layer IN LISTS entries)
  if(NOT IS_DIRECTORY "${SRC}/${layer}")
    continue()
  endif()
  if(layer STREQUAL "app")
    continue()
  elseif(layer STREQUAL "workflow")
    set(forbidden "app|lambda")
  elseif(layer STREQUAL "lambda")
    set(forbidden "app")
  elseif(layer STREQUAL "aws")
    # Everything but common/ and aws/: no port folder, no upper layer.
    set(forbidden "")
    foreach(other IN LISTS entries)
      if(IS_DIRECTORY "${SRC}/${other}" AND NOT other MATCHES "^(aws|common)$")
        if(forbidden)
          string(APPEND forbidden "|")
        endif()
        string(APPEND forbidden "${other}")
      endif()
    endforeach()
  elseif(layer STREQUAL "config")
    set(forbidden "workflow|app")
  else()
    set(forbidden "config|workflow|app")
  endif()
  file(GLOB_RECURSE sources "${SRC}/${layer}/*.h" "${SRC}/${layer}/*.cc")
  foreach(source IN LISTS sources)
    math(EXPR scanned "${scanned} + 1")
    file(STRINGS "${source}" lines
         REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<](${forbidden})/")
    foreach(line IN LISTS lines)
      file(RELATIVE_PATH rel "${SRC}" "${source}")
      string(STRIP "${line}" line)
      string(APPEND violations "  src/${rel}: ${line}\n")
    endforeach()
  endforeach()
endforeach()

# Guards against a check that passes because it read nothing.
if(scanned LESS 50)
  message(FATAL_ERROR "layering_test: only ${scanned} files under ${SRC}")
endif()
if(violations)
  message(FATAL_ERROR "layering_test: a layer includes one above it "
          "(give the lower layer its own options struct instead):\n"
          "${violations}")
endif()
message(STATUS "layering_test: ${scanned} files, every include points down")
