package main

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// What cdc serves on its metrics listener (cdc/health.py), and where it listens by default
// (cdc/settings.py: metrics.listen).
const (
	livenessPath  = "/healthz"
	readinessPath = "/readyz"
	metricsPath   = "/metrics"
	defaultListen = "127.0.0.1:9187"
)

type checker struct {
	objects  []object
	external map[string]bool // Secrets created outside the kustomization
	problems []string
}

func (c *checker) report(o object, format string, args ...any) {
	c.problems = append(c.problems, o.String()+": "+fmt.Sprintf(format, args...))
}

func (c *checker) find(kind, namespace, name string) any {
	for _, o := range c.objects {
		if o.kind == kind && o.namespace == namespace && o.name == name {
			return o.value
		}
	}
	return nil
}

// check runs the semantic checks over the decoded objects: what the API server would accept
// but the pods would trip on (a Secret that is not there, a probe on a path cdc does not
// serve, a selector that misses its pods).
func check(objects []object, external []string) []string {
	c := &checker{objects: objects, external: map[string]bool{}}
	for _, name := range external {
		c.external[name] = true
	}
	for _, o := range objects {
		if d, ok := o.value.(*appsv1.Deployment); ok {
			c.deployment(o, d)
		}
	}
	c.selectorOverlaps()
	c.monitoring()
	return c.problems
}

func (c *checker) deployment(o object, d *appsv1.Deployment) {
	pod := d.Spec.Template
	if selector, problem := selectorOf(d.Spec.Selector); problem != "" {
		c.report(o, "spec.selector %s", problem)
	} else if !selector.Matches(labels.Set(pod.Labels)) {
		c.report(o, "spec.selector (%s) does not match spec.template.metadata.labels %v",
			selector, pod.Labels)
	}

	volumes := map[string]corev1.Volume{}
	for i, volume := range pod.Spec.Volumes {
		at := fmt.Sprintf("spec.template.spec.volumes[%d] (%s)", i, volume.Name)
		if _, seen := volumes[volume.Name]; seen {
			c.report(o, "%s: a second volume of this name", at)
		}
		volumes[volume.Name] = volume
		// A missing ConfigMap or Secret leaves the pod in ContainerCreating, with no error
		// until someone describes it.
		if ref := volume.ConfigMap; ref != nil && !isTrue(ref.Optional) &&
			c.find("ConfigMap", o.namespace, ref.Name) == nil {
			c.report(o, "%s: ConfigMap %s is not in the kustomization", at, ref.Name)
		}
		if ref := volume.Secret; ref != nil && !isTrue(ref.Optional) && !c.external[ref.SecretName] &&
			c.find("Secret", o.namespace, ref.SecretName) == nil {
			c.report(o, "%s: Secret %s is neither in the kustomization nor named by "+
				"-external-secret", at, ref.SecretName)
		}
	}

	runsCdc := false
	for i, container := range pod.Spec.Containers {
		at := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		for _, problem := range resourceProblems(container.Resources) {
			c.report(o, "%s: %s", at, problem)
		}
		for j, mount := range container.VolumeMounts {
			if _, ok := volumes[mount.Name]; !ok {
				c.report(o, "%s.volumeMounts[%d]: no volume named %s", at, j, mount.Name)
			}
		}
		if config, ok := cdcRunConfig(container); ok {
			runsCdc = true
			c.cdcContainer(o, at, pod.Spec, container, config)
		}
	}
	if !runsCdc {
		c.report(o, "no container runs `cdc run`")
	}
}

// cdcContainer checks that the probes reach the endpoints cdc serves: on the port its
// pipeline file says it listens on, which is read from the ConfigMap the pod mounts.
func (c *checker) cdcContainer(o object, at string, pod corev1.PodSpec, container corev1.Container,
	config string) {
	livenessPort, livenessProblem := probePort(container, container.LivenessProbe, "livenessProbe",
		livenessPath)
	readinessPort, readinessProblem := probePort(container, container.ReadinessProbe,
		"readinessProbe", readinessPath)
	for _, problem := range []string{livenessProblem, readinessProblem} {
		if problem != "" {
			c.report(o, "%s.%s", at, problem)
		}
	}

	if config == "" {
		c.report(o, "%s: `cdc run` without --config", at)
		return
	}
	text, from, problem := c.mountedFile(o.namespace, pod, container, config)
	if problem != "" {
		c.report(o, "%s: --config %s: %s", at, config, problem)
		return
	}
	var pipeline struct {
		Metrics struct {
			Listen string `json:"listen"`
		} `json:"metrics"`
	}
	if err := yaml.Unmarshal([]byte(text), &pipeline); err != nil {
		c.report(o, "%s: %s: %v", at, from, err)
		return
	}
	listen := pipeline.Metrics.Listen
	if listen == "" {
		listen = defaultListen
	}
	host, portText, err := net.SplitHostPort(listen)
	port, portErr := strconv.ParseInt(portText, 10, 32)
	if err != nil || portErr != nil {
		c.report(o, "%s: %s: metrics.listen %q is not host:port", at, from, listen)
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		c.report(o, "%s: %s: metrics.listen is %s: the kubelet's probes and Prometheus "+
			"connect to the pod's IP, so cdc must listen beyond loopback (0.0.0.0:%d)",
			at, from, listen, port)
	}
	for _, probe := range []struct {
		name string
		port int32
	}{{"livenessProbe", livenessPort}, {"readinessProbe", readinessPort}} {
		if probe.port != 0 && int64(probe.port) != port {
			c.report(o, "%s.%s: port %d is not cdc's metrics port %d (metrics.listen in %s)",
				at, probe.name, probe.port, port, from)
		}
	}
}

// mountedFile returns the text of the file at `file` in the container when a ConfigMap of
// the kustomization provides it, and which ConfigMap key it is.
func (c *checker) mountedFile(namespace string, pod corev1.PodSpec, container corev1.Container,
	file string) (text, from, problem string) {
	for _, mount := range container.VolumeMounts {
		key := ""
		switch {
		case mount.SubPath == "" && path.Clean(mount.MountPath) == path.Dir(file):
			key = path.Base(file)
		case mount.SubPath != "" && path.Clean(mount.MountPath) == file:
			key = mount.SubPath
		default:
			continue
		}
		for _, volume := range pod.Volumes {
			if volume.Name != mount.Name {
				continue
			}
			ref := volume.ConfigMap
			if ref == nil {
				return "", "", fmt.Sprintf("volume %s is not a ConfigMap", volume.Name)
			}
			if len(ref.Items) > 0 {
				mapped := ""
				for _, item := range ref.Items {
					if item.Path == key {
						mapped = item.Key
					}
				}
				if mapped == "" {
					return "", "", fmt.Sprintf("volume %s's items have no path %s", volume.Name, key)
				}
				key = mapped
			}
			configMap, _ := c.find("ConfigMap", namespace, ref.Name).(*corev1.ConfigMap)
			if configMap == nil {
				return "", "", fmt.Sprintf("ConfigMap %s is not in the kustomization", ref.Name)
			}
			text, ok := configMap.Data[key]
			if !ok {
				return "", "", fmt.Sprintf("ConfigMap %s has no key %s", ref.Name, key)
			}
			return text, fmt.Sprintf("ConfigMap %s key %s", ref.Name, key), ""
		}
		return "", "", fmt.Sprintf("no volume named %s", mount.Name)
	}
	return "", "", "no volume is mounted there"
}

// cdcRunConfig tells whether the container runs `cdc run`, and its --config path.
func cdcRunConfig(container corev1.Container) (string, bool) {
	args := append(append([]string{}, container.Command...), container.Args...)
	if len(args) < 2 || path.Base(args[0]) != "cdc" || args[1] != "run" {
		return "", false
	}
	for i, arg := range args {
		if arg == "--config" && i+1 < len(args) {
			return args[i+1], true
		}
		if value, ok := strings.CutPrefix(arg, "--config="); ok {
			return value, true
		}
	}
	return "", true
}

// probePort checks an HTTP probe of `path` and returns the container port it reaches.
func probePort(container corev1.Container, probe *corev1.Probe, name, path string) (int32, string) {
	switch {
	case probe == nil:
		return 0, name + " is missing"
	case probe.HTTPGet == nil:
		return 0, fmt.Sprintf("%s is not an httpGet of %s", name, path)
	case probe.HTTPGet.Path != path:
		return 0, fmt.Sprintf("%s.httpGet.path is %q: cdc answers it on %s", name,
			probe.HTTPGet.Path, path)
	}
	port := probe.HTTPGet.Port
	for _, declared := range container.Ports {
		if (port.Type == intstr.String && declared.Name == port.StrVal) ||
			(port.Type == intstr.Int && declared.ContainerPort == port.IntVal) {
			return declared.ContainerPort, ""
		}
	}
	return 0, fmt.Sprintf("%s.httpGet.port %s is not a port of the container", name, port.String())
}

// resourceProblems: the scheduler places a pod by its requests, and a container without a
// memory limit can take the node's memory. No CPU limit is asked for: it only throttles.
func resourceProblems(resources corev1.ResourceRequirements) []string {
	var problems []string
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := resources.Requests[name]; !ok {
			problems = append(problems, fmt.Sprintf("resources.requests.%s is missing", name))
		}
	}
	if _, ok := resources.Limits[corev1.ResourceMemory]; !ok {
		problems = append(problems, "resources.limits.memory is missing")
	}
	for name, limit := range resources.Limits {
		if request, ok := resources.Requests[name]; ok && request.Cmp(limit) > 0 {
			problems = append(problems, fmt.Sprintf("resources.requests.%s %s is above its limit %s",
				name, request.String(), limit.String()))
		}
	}
	return problems
}

// selectorOverlaps: two Deployments selecting each other's pods fight over them.
func (c *checker) selectorOverlaps() {
	for i, a := range c.objects {
		for _, b := range c.objects[i+1:] {
			da, okA := a.value.(*appsv1.Deployment)
			db, okB := b.value.(*appsv1.Deployment)
			if !okA || !okB || a.namespace != b.namespace {
				continue
			}
			sa, problemA := selectorOf(da.Spec.Selector)
			sb, problemB := selectorOf(db.Spec.Selector)
			if problemA == "" && problemB == "" && (sa.Matches(labels.Set(db.Spec.Template.Labels)) ||
				sb.Matches(labels.Set(da.Spec.Template.Labels))) {
				c.report(a, "spec.selector overlaps that of %s: one selects the other's pods", b)
			}
		}
	}
}

// selectorOf parses a label selector; an empty one would select every pod of the namespace.
func selectorOf(selector *metav1.LabelSelector) (labels.Selector, string) {
	if selector == nil {
		return nil, "is missing"
	}
	parsed, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, err.Error()
	}
	if parsed.Empty() {
		return nil, "is empty: it selects every pod of the namespace"
	}
	return parsed, ""
}

func isTrue(flag *bool) bool {
	return flag != nil && *flag
}
