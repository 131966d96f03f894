package charttest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// RestrictedViolations lists how pod breaks the Pod Security Standards'
// "restricted" profile (latest), check by check as the admission plugin
// applies them: baseline first, then the restricted additions.
func RestrictedViolations(pod *corev1.PodTemplateSpec) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	spec := pod.Spec
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}

	// Baseline.
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		add("host namespaces")
	}
	for _, s := range psc.Sysctls {
		if !safeSysctls[s.Name] {
			add("unsafe sysctl %s", s.Name)
		}
	}
	if o := psc.SELinuxOptions; o != nil && !seLinuxOK(o) {
		add("pod seLinuxOptions %+v", *o)
	}
	if p := psc.AppArmorProfile; p != nil && p.Type == corev1.AppArmorProfileTypeUnconfined {
		add("pod AppArmor unconfined")
	}
	// Restricted: only these volume types.
	for _, vol := range spec.Volumes {
		s := vol.VolumeSource
		if s.ConfigMap == nil && s.CSI == nil && s.DownwardAPI == nil && s.EmptyDir == nil && s.Ephemeral == nil &&
			s.PersistentVolumeClaim == nil && s.Projected == nil && s.Secret == nil {
			add("volume %s: a type the restricted profile forbids", vol.Name)
		}
	}
	podSeccomp := seccompOK(psc.SeccompProfile)
	if psc.SeccompProfile != nil && !podSeccomp {
		add("pod seccompProfile %s", psc.SeccompProfile.Type)
	}
	podNonRoot := psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		add("pod runAsUser 0")
	}

	all := append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		if sc.Privileged != nil && *sc.Privileged {
			add("%s: privileged", c.Name)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				add("%s: hostPort %d", c.Name, p.HostPort)
			}
		}
		if o := sc.SELinuxOptions; o != nil && !seLinuxOK(o) {
			add("%s: seLinuxOptions %+v", c.Name, *o)
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			add("%s: procMount %s", c.Name, *sc.ProcMount)
		}
		if p := sc.AppArmorProfile; p != nil && p.Type == corev1.AppArmorProfileTypeUnconfined {
			add("%s: AppArmor unconfined", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add("%s: allowPrivilegeEscalation must be false", c.Name)
		}
		if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			add("%s: runAsNonRoot false", c.Name)
		} else if sc.RunAsNonRoot == nil && !podNonRoot {
			add("%s: runAsNonRoot must be true (pod or container)", c.Name)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add("%s: runAsUser 0", c.Name)
		}
		if sc.SeccompProfile != nil && !seccompOK(sc.SeccompProfile) {
			add("%s: seccompProfile %s", c.Name, sc.SeccompProfile.Type)
		} else if sc.SeccompProfile == nil && !podSeccomp {
			add("%s: seccompProfile must be RuntimeDefault or Localhost (pod or container)", c.Name)
		}
		dropsAll := false
		if caps := sc.Capabilities; caps != nil {
			for _, d := range caps.Drop {
				dropsAll = dropsAll || d == "ALL"
			}
			for _, a := range caps.Add {
				if a != "NET_BIND_SERVICE" {
					add("%s: adds capability %s", c.Name, a)
				}
			}
		}
		if !dropsAll {
			add("%s: capabilities must drop ALL", c.Name)
		}
	}
	return v
}

var safeSysctls = map[string]bool{
	"kernel.shm_rmid_forced": true, "net.ipv4.ip_local_port_range": true, "net.ipv4.ip_unprivileged_port_start": true,
	"net.ipv4.tcp_syncookies": true, "net.ipv4.ping_group_range": true, "net.ipv4.ip_local_reserved_ports": true,
	"net.ipv4.tcp_keepalive_time": true, "net.ipv4.tcp_fin_timeout": true, "net.ipv4.tcp_keepalive_intvl": true,
	"net.ipv4.tcp_keepalive_probes": true,
}

func seLinuxOK(o *corev1.SELinuxOptions) bool {
	switch o.Type {
	case "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t":
	default:
		return false
	}
	return o.User == "" && o.Role == ""
}

func seccompOK(p *corev1.SeccompProfile) bool {
	return p != nil && (p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost)
}
