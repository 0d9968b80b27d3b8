// Package vmtest holds make test-image's checks of the built image (build tag
// image): each test boots the image's root file system in a qemu virtual
// machine shaped like Cloud Run's second generation (image/vminit is its
// init), in one of the variants Cloud Run may hand a container, and checks
// the service over real HTTP through a loopback port forward. image/test.sh
// prepares the kernel, initramfs and root file system and runs them.
package vmtest
