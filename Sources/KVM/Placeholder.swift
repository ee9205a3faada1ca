// KVM target.
