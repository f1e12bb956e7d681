# Read by cpack (CPACK_PROJECT_CONFIG_FILE) before it packages: the Debian
# package always has its man page.
if(NOT EXISTS "${CPACK_PNEUMO_MAN_GZ}")
  message(FATAL_ERROR "${CPACK_PNEUMO_MAN_GZ} is missing: the package needs help2man "
                      "(apt-get install help2man, then reconfigure and build)")
endif()
