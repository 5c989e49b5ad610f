# Build rules shared by every dsv4lab target: the floating-point contract of DESIGN §2,
# sanitizers, CUDA / HIP detection, and the helpers that turn a folder into a library
# and a test file into a labelled CTest test.

find_package(Threads REQUIRED)

# ---- floating-point rules (DESIGN §2), set once ----------------------------------------
add_library(dsv4_fp_rules INTERFACE)
target_compile_options(dsv4_fp_rules INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-ffp-contract=off -fno-fast-math -Wall -Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false --prec-div=true --prec-sqrt=true --ftz=false
                             -Xcompiler=-ffp-contract=off --expt-relaxed-constexpr>)
if(DSV4LAB_NATIVE_FMA)
  include(CheckCXXSourceRuns)
  set(CMAKE_REQUIRED_FLAGS -mfma)
  check_cxx_source_runs("
    #include <cmath>
    int main() { volatile float a = 1.0f + 0x1p-12f; return std::fma(a, a, -1.0f) == (a * a - 1.0f) ? 1 : 0; }"
    DSV4LAB_HOST_HAS_FMA)
  unset(CMAKE_REQUIRED_FLAGS)
  if(DSV4LAB_HOST_HAS_FMA)
    target_compile_options(dsv4_fp_rules INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-mfma>
                                                   $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-mfma>)
  endif()
endif()
target_compile_definitions(dsv4_fp_rules INTERFACE DSV4LAB_FP_RULES=1)

# ---- sanitizers ---------------------------------------------------------------------------
if(DSV4LAB_SANITIZE)
  target_compile_options(dsv4_fp_rules INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${DSV4LAB_SANITIZE} -fno-omit-frame-pointer>)
  target_link_options(dsv4_fp_rules INTERFACE -fsanitize=${DSV4LAB_SANITIZE})
endif()

# ---- CUDA ---------------------------------------------------------------------------------
set(DSV4LAB_HAVE_CUDA OFF)
if(NOT DSV4LAB_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # sm_90a by default (Hopper, wgmma/setmaxnreg available); override on the command line.
      set(CMAKE_CUDA_ARCHITECTURES 90a)
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not know the C++20 dialect flag of nvcc 13: teach it.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(DSV4LAB_HAVE_CUDA ON)
    message(STATUS "dsv4lab: CUDA kernels ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(DSV4LAB_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DSV4LAB_CUDA=ON but no CUDA compiler (nvcc) was found")
  else()
    message(STATUS "dsv4lab: CUDA kernels OFF (no nvcc found)")
  endif()
endif()

# ---- HIP compile check ------------------------------------------------------------------
set(DSV4LAB_HIPCC "")
if(NOT DSV4LAB_HIP STREQUAL "OFF")
  find_program(DSV4LAB_HIPCC_EXE hipcc)
  if(DSV4LAB_HIPCC_EXE)
    set(DSV4LAB_HIPCC ${DSV4LAB_HIPCC_EXE})
    message(STATUS "dsv4lab: HIP compile check ON (${DSV4LAB_HIPCC}, gfx90a)")
  elseif(DSV4LAB_HIP STREQUAL "ON")
    message(FATAL_ERROR "DSV4LAB_HIP=ON but hipcc was not found")
  else()
    message(STATUS "dsv4lab: HIP compile check OFF (no hipcc found)")
  endif()
endif()

# ---- dependencies -----------------------------------------------------------------------
find_package(Boost 1.71 REQUIRED CONFIG)  # headers only: Boost.Test is built from its header-only form
find_package(CLI11 REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(nlohmann_json 3.9 REQUIRED)

# ---- build provenance (git commit refreshed on every build) -------------------------------
set(DSV4LAB_GENERATED ${CMAKE_BINARY_DIR}/generated)
string(TOUPPER "${CMAKE_BUILD_TYPE}" _bt)
set(DSV4LAB_BUILD_FLAGS "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${_bt}} -ffp-contract=off -fno-fast-math")
if(DSV4LAB_HOST_HAS_FMA)
  string(APPEND DSV4LAB_BUILD_FLAGS " -mfma")
endif()
if(DSV4LAB_HAVE_CUDA)
  string(APPEND DSV4LAB_BUILD_FLAGS "; nvcc --fmad=false --prec-div=true --prec-sqrt=true --ftz=false archs=${CMAKE_CUDA_ARCHITECTURES}")
endif()
add_custom_target(dsv4_build_info ALL
  COMMAND ${CMAKE_COMMAND}
          -DOUT=${DSV4LAB_GENERATED}/dsv4lab/build_info.hpp
          -DSRC=${CMAKE_SOURCE_DIR}
          -DVERSION=${PROJECT_VERSION}
          "-DCXX=${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}"
          "-DCUDA=${CMAKE_CUDA_COMPILER_VERSION}"
          "-DFLAGS=${DSV4LAB_BUILD_FLAGS}"
          "-DBUILD_TYPE=${CMAKE_BUILD_TYPE}"
          -P ${CMAKE_SOURCE_DIR}/cmake/BuildInfo.cmake
  BYPRODUCTS ${DSV4LAB_GENERATED}/dsv4lab/build_info.hpp
  COMMENT "build provenance"
  VERBATIM)

# dsv4_add_library(NAME FOLDER [CUDA] [RECURSE] [DEPS ...]): a static library of FOLDER/*.cpp
# (and *.cu with CUDA; subfolders too with RECURSE); an INTERFACE library while the folder has
# no sources yet.
function(dsv4_add_library name folder)
  cmake_parse_arguments(A "CUDA;RECURSE" "" "DEPS;EXCLUDE" ${ARGN})
  if(A_RECURSE)
    file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${folder}/*.cpp)
  else()
    file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${folder}/*.cpp)
  endif()
  if(A_CUDA)
    file(GLOB cu CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${folder}/*.cu)
    list(APPEND srcs ${cu})
  endif()
  foreach(ex IN LISTS A_EXCLUDE)
    list(FILTER srcs EXCLUDE REGEX "${ex}")
  endforeach()
  if(srcs)
    add_library(${name} STATIC ${srcs})
    target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR} ${DSV4LAB_GENERATED})
    target_link_libraries(${name} PUBLIC dsv4_fp_rules ${A_DEPS})
    add_dependencies(${name} dsv4_build_info)
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${CMAKE_SOURCE_DIR} ${DSV4LAB_GENERATED})
    target_link_libraries(${name} INTERFACE dsv4_fp_rules ${A_DEPS})
  endif()
endfunction()
