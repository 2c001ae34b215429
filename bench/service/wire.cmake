# Builds bench_service in a build tree of your own before bench/service is
# wired into the project's CMakeLists (run.sh uses it; harmless afterwards):
#   cmake -S . -B build-svcbench \
#     -DCMAKE_PROJECT_INCLUDE=$PWD/bench/service/wire.cmake
# The target is defined at the end of the top-level CMakeLists (a deferred
# call may not add a subdirectory, so it repeats bench/service/CMakeLists.txt).
function(cbpipe_wire_bench_service)
  if(TARGET bench_service OR NOT TARGET cbpipe_test_servers)
    return()
  endif()
  add_executable(bench_service
                 ${PROJECT_SOURCE_DIR}/bench/service/bench_service.cc)
  target_link_libraries(bench_service
                        PRIVATE cbpipe_workflow cbpipe_test_servers)
  add_dependencies(bench_service cbpipe bench_queue)
  set_target_properties(bench_service PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/bench/service)
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR}
               CALL cbpipe_wire_bench_service)
