# Installs pneumo.service and its defaults file for the prefix being installed
# to (CMAKE_INSTALL_PREFIX when the install runs: /usr for the Debian package):
# the unit in PREFIX/lib/systemd/system, running PREFIX/bin/pneumo; the
# defaults in /etc/default/pneumo for /usr, else in PREFIX/etc/default/pneumo.
# Set before this runs (cmake/package.cmake): PNEUMO_PACKAGING_DIR, PNEUMO_STAGE_DIR.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(sysconfdir /etc)
else()
  set(sysconfdir "${CMAKE_INSTALL_PREFIX}/etc")
endif()
set(PNEUMO_BINDIR "${CMAKE_INSTALL_PREFIX}/bin")
set(PNEUMO_DOCDIR "${CMAKE_INSTALL_PREFIX}/share/doc/pneumo")
set(PNEUMO_DEFAULTS "${sysconfdir}/default/pneumo")
configure_file("${PNEUMO_PACKAGING_DIR}/pneumo.service.in" "${PNEUMO_STAGE_DIR}/pneumo.service" @ONLY)
file(INSTALL "${PNEUMO_STAGE_DIR}/pneumo.service" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
file(INSTALL "${PNEUMO_PACKAGING_DIR}/default" DESTINATION "${sysconfdir}/default" RENAME pneumo)
