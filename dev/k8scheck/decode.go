package main

import (
	"fmt"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// object is one rendered object, decoded into its API type.
type object struct {
	kind, namespace, name string
	value                 runtime.Object
}

func (o object) String() string {
	if o.namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.kind, o.namespace, o.name)
	}
	return fmt.Sprintf("%s %s", o.kind, o.name)
}

// render runs kustomize with kubectl's defaults (no plugins, files only under DIR, the
// kustomization's sortOptions or else the legacy order) and returns the objects and the
// YAML `kubectl kustomize DIR` prints.
func render(dir string) ([]*resource.Resource, []byte, error) {
	options := krusty.MakeDefaultOptions()
	options.Reorder = krusty.ReorderOptionUnspecified // what kubectl passes without --reorder
	kustomizer := krusty.MakeKustomizer(options)
	resources, err := kustomizer.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, nil, err
	}
	text, err := resources.AsYaml()
	if err != nil {
		return nil, nil, err
	}
	return resources.Resources(), text, nil
}

// The kinds a cdc pipeline and its likely overlays use. A kind outside these fails the check
// rather than passing unread: add its group here when the manifests start using it.
var addToScheme = []func(*runtime.Scheme) error{
	corev1.AddToScheme,
	appsv1.AddToScheme,
	policyv1.AddToScheme,
	networkingv1.AddToScheme,
	rbacv1.AddToScheme,
	autoscalingv2.AddToScheme,
	monitoringv1.AddToScheme,
}

// decodeAll decodes each object from its rendered YAML, as kubectl reads what kustomize
// prints, strictly: an unknown or duplicated field is an error here, where an API server
// that does not validate fields would drop it without a word.
func decodeAll(resources []*resource.Resource) ([]object, []string) {
	scheme := runtime.NewScheme()
	for _, add := range addToScheme {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	serializer := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})

	var objects []object
	var problems []string
	for _, res := range resources {
		o := object{kind: res.GetKind(), namespace: res.GetNamespace(), name: res.GetName()}
		text, err := res.AsYAML()
		if err == nil {
			o.value, _, err = serializer.Decode(text, nil, nil)
		}
		switch {
		case runtime.IsNotRegisteredError(err):
			problems = append(problems, fmt.Sprintf("%s: unknown kind %s %s (this check knows %s)",
				o, res.GetApiVersion(), o.kind, knownVersions(scheme)))
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", o, err))
		default:
			objects = append(objects, o)
		}
	}
	return objects, problems
}

// knownVersions names the API versions the scheme decodes, for the unknown-kind message.
func knownVersions(scheme *runtime.Scheme) string {
	seen := map[string]bool{}
	var versions []string
	for gvk := range scheme.AllKnownTypes() {
		if version := gvk.GroupVersion().String(); gvk.Version != runtime.APIVersionInternal &&
			!seen[version] {
			seen[version] = true
			versions = append(versions, version)
		}
	}
	sort.Strings(versions)
	return strings.Join(versions, ", ")
}
