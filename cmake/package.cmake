# Installation and the Debian package (`make package` in the build directory:
# pneumo_<version>-1_<arch>.deb, by CPack). Included from CMakeLists.txt.
#
# Layout under the prefix (/usr in the package): bin/pneumo, share/pneumo/
# (the bundled model and the architecture files, found by the binary relative
# to its own bin/: pn_data_file in src/core/os.c), share/doc/pneumo,
# share/man/man1/pneumo.1.gz, lib/systemd/system/pneumo.service, and the
# service's defaults in /etc/default/pneumo (PREFIX/etc/default for another
# prefix: cmake/install_service.cmake).
include(GNUInstallDirs)

install(TARGETS pneumo_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES models/default.safetensors DESTINATION ${CMAKE_INSTALL_DATADIR}/pneumo)
install(DIRECTORY models/arch DESTINATION ${CMAKE_INSTALL_DATADIR}/pneumo FILES_MATCHING PATTERN "*.cfg")
install(FILES README.md models/MODEL_CARD.md docs/api.md docs/input-formats.md docs/ood.md docs/onnx.md
        packaging/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Debian's changelog: the top entry must be this version.
set(PNEUMO_DEB_VERSION "${PROJECT_VERSION}-1")
file(STRINGS packaging/changelog _top LIMIT_COUNT 1)
if(NOT _top MATCHES "^pneumo \\(${PNEUMO_DEB_VERSION}\\) ")
  message(FATAL_ERROR "packaging/changelog starts with '${_top}': add an entry for pneumo (${PNEUMO_DEB_VERSION})")
endif()
set(PNEUMO_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/changelog.Debian.gz)
add_custom_command(OUTPUT ${PNEUMO_CHANGELOG_GZ}
  COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/packaging/changelog > ${PNEUMO_CHANGELOG_GZ}
  DEPENDS ${CMAKE_SOURCE_DIR}/packaging/changelog VERBATIM)
add_custom_target(debian_changelog ALL DEPENDS ${PNEUMO_CHANGELOG_GZ})
install(FILES ${PNEUMO_CHANGELOG_GZ} DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The man page, from `pneumo --help` by help2man (not in sanitizer or fuzz
# builds, whose binary is not what gets installed).
find_program(HELP2MAN help2man)
set(PNEUMO_MAN_GZ ${CMAKE_BINARY_DIR}/pneumo.1.gz)
if(HELP2MAN AND NOT PNEUMO_SANITIZE AND NOT PNEUMO_FUZZ)
  add_custom_command(OUTPUT ${PNEUMO_MAN_GZ}
    COMMAND ${HELP2MAN} --no-info --section=1 --name "chest X-ray pneumonia screening toolkit"
            --include=${CMAKE_SOURCE_DIR}/packaging/pneumo.h2m --output=${CMAKE_BINARY_DIR}/pneumo.1
            $<TARGET_FILE:pneumo_cli>
    COMMAND gzip -9n -f ${CMAKE_BINARY_DIR}/pneumo.1
    DEPENDS pneumo_cli ${CMAKE_SOURCE_DIR}/packaging/pneumo.h2m VERBATIM)
  add_custom_target(manpage ALL DEPENDS ${PNEUMO_MAN_GZ})
  install(FILES ${PNEUMO_MAN_GZ} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
elseif(NOT HELP2MAN)
  message(STATUS "help2man not found: no man page (`make package` needs it: apt-get install help2man)")
endif()

install(CODE "set(PNEUMO_PACKAGING_DIR \"${CMAKE_SOURCE_DIR}/packaging\")
set(PNEUMO_STAGE_DIR \"${CMAKE_BINARY_DIR}/install-service\")")
install(SCRIPT cmake/install_service.cmake)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pneumo)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(PNEUMO_PACKAGE_MAINTAINER "pneumo maintainers <maintainers@users.noreply.b-seed-26391872.example>"
    CACHE STRING "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT "${PNEUMO_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The Depends line: the shared libraries the binary links, as dpkg-shlibdeps names them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "chest X-ray pneumonia screening toolkit (research use)
pneumo trains, evaluates, explains and serves a classifier that reads a
pediatric chest X-ray (JPEG, PNG or DICOM) and says NORMAL or PNEUMONIA, with
a probability, a Grad-CAM heatmap and metrics with confidence intervals.

This package holds the pneumo command, its bundled model (a five-fold
ensemble of MobileNetV3-Small networks) and pneumo.service, which runs the
HTTP server (REST API, web page, Prometheus metrics, SQLite audit log) as a
dynamic user with the options in /etc/default/pneumo.

pneumo is a research and screening-assist tool, not a diagnostic device.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/conffiles ${CMAKE_SOURCE_DIR}/packaging/postinst
    ${CMAKE_SOURCE_DIR}/packaging/prerm ${CMAKE_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Checked when cpack runs: the package is not made without its man page.
set(CPACK_PNEUMO_MAN_GZ ${PNEUMO_MAN_GZ})
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_SOURCE_DIR}/cmake/cpack_checks.cmake)
set(CPACK_SOURCE_GENERATOR TXZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/node_modules/" "/runs/" "/out/")
include(CPack)
